//! Which directory listings carry each file's attributes, learnt per calling process.
//!
//! With attributes (READDIRPLUS as fuser sends it) the kernel makes an inode and a dentry
//! for every entry, and we read every entry's inode first. That is right for `ls -l`, `tar`
//! and `du`, which stat all they list (each entry would otherwise cost a LOOKUP round trip),
//! and wasted on `find` and `os.walk`, which go by `d_type`: on a Debian root filesystem a
//! cold `find` spends a third of its time on inodes it never looks at. Nothing in a
//! READDIRPLUS says which kind of caller asks, so each caller (the request's pid) is
//! watched, much as the kernel's own READDIRPLUS_AUTO watches each directory:
//! - the first `PROBATION` directories it lists carry attributes for every entry (a
//!   directory may take many replies: they count as one listing);
//! - after that its files are listed bare (node id 0, see `dirplus`); directories keep their
//!   attributes, since a walk enters them and a bare one would cost a LOOKUP to enter;
//! - a caller that looks up a file in a directory it listed is one that stats what it
//!   lists: it gets attributes from then on. It pays at most one bare listing in LOOKUPs.

use std::collections::HashMap;
use std::sync::Mutex;

/// Directories a caller lists with attributes for all, before its files may go bare.
const PROBATION: u32 = 2;
/// Directories remembered per caller as listed by it.
const RECENT: usize = 8;
/// Callers remembered; beyond this the least recently seen half is forgotten.
const MAX_CALLERS: usize = 1024;

#[derive(Default)]
struct Caller {
    listings: u32,
    stats: bool,
    listed: [u64; RECENT],
    next: usize,
    seen: u64,
}

#[derive(Default)]
struct Callers {
    by_pid: HashMap<u32, Caller>,
    clock: u64,
}

#[derive(Default)]
pub struct ListingPolicy {
    callers: Mutex<Callers>,
}

impl ListingPolicy {
    /// Records that `pid` lists directory node `dir`, from its start if `from_start` (else
    /// it goes on with a listing); says whether the files of this reply may go bare. A
    /// READDIR counts too: lookups of its files tell of a caller that stats.
    pub fn files_bare(&self, pid: u32, dir: u64, from_start: bool) -> bool {
        if pid == 0 {
            // A request the kernel makes for nobody in particular: the safe answer.
            return false;
        }
        let mut callers = self.callers.lock().unwrap_or_else(|e| e.into_inner());
        callers.clock += 1;
        let clock = callers.clock;
        if callers.by_pid.len() >= MAX_CALLERS && !callers.by_pid.contains_key(&pid) {
            forget_oldest_half(&mut callers.by_pid);
        }
        let caller = callers.by_pid.entry(pid).or_default();
        caller.seen = clock;
        if from_start || caller.listings == 0 {
            caller.listings = caller.listings.saturating_add(1);
            caller.listed[caller.next] = dir;
            caller.next = (caller.next + 1) % RECENT;
        }
        !caller.stats && caller.listings > PROBATION
    }

    /// `pid` looked up a file (not a directory) in directory node `parent`.
    pub fn file_looked_up(&self, pid: u32, parent: u64) {
        let mut callers = self.callers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(caller) = callers.by_pid.get_mut(&pid) {
            if caller.listed.contains(&parent) {
                caller.stats = true;
            }
        }
    }
}

fn forget_oldest_half(by_pid: &mut HashMap<u32, Caller>) {
    let mut seen: Vec<u64> = by_pid.values().map(|c| c.seen).collect();
    seen.sort_unstable();
    let cut = seen[seen.len() / 2];
    by_pid.retain(|_, c| c.seen > cut);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_go_bare_after_the_probation_listings() {
        let policy = ListingPolicy::default();
        let bare: Vec<bool> = (0..5).map(|dir| policy.files_bare(42, dir, true)).collect();
        assert_eq!(bare, [false, false, true, true, true]);
    }

    #[test]
    fn the_replies_of_one_directory_are_one_listing() {
        let policy = ListingPolicy::default();
        assert!(!policy.files_bare(3, 100, true));
        // `ls -l` of a big directory: every later reply still carries attributes.
        assert!((0..20).all(|_| !policy.files_bare(3, 100, false)));
        assert!(!policy.files_bare(3, 101, true));
        assert!(policy.files_bare(3, 102, true));
        assert!(policy.files_bare(3, 102, false));
    }

    #[test]
    fn a_caller_that_looks_up_a_file_it_listed_keeps_attributes() {
        let policy = ListingPolicy::default();
        for dir in 10..13 {
            policy.files_bare(7, dir, true);
        }
        assert!(policy.files_bare(7, 13, true));
        policy.file_looked_up(7, 13);
        assert!(!policy.files_bare(7, 14, true));
        assert!(!policy.files_bare(7, 15, true), "for good");
        // Another caller is judged on its own.
        for dir in 0..PROBATION {
            assert!(!policy.files_bare(8, u64::from(dir), true));
        }
        assert!(policy.files_bare(8, 99, true));
    }

    #[test]
    fn looking_up_elsewhere_is_no_sign_of_stat() {
        let policy = ListingPolicy::default();
        for dir in 0..3 {
            policy.files_bare(5, dir, true);
        }
        policy.file_looked_up(5, 1000); // a path walked to, not a listed directory
        policy.file_looked_up(6, 1); // another process in a listed directory
        assert!(policy.files_bare(5, 3, true));
    }

    #[test]
    fn lookups_before_any_listing_are_ignored() {
        let policy = ListingPolicy::default();
        policy.file_looked_up(9, 0);
        for dir in 0..PROBATION {
            policy.files_bare(9, u64::from(dir) + 1, true);
        }
        assert!(policy.files_bare(9, 50, true));
    }

    #[test]
    fn an_unknown_caller_always_gets_attributes() {
        let policy = ListingPolicy::default();
        assert!((0..10).all(|dir| !policy.files_bare(0, dir, true)));
    }

    #[test]
    fn callers_are_bounded() {
        let policy = ListingPolicy::default();
        for pid in 1..=(MAX_CALLERS as u32 * 3) {
            policy.files_bare(pid, 1, true);
        }
        let callers = policy.callers.lock().unwrap();
        assert!(callers.by_pid.len() <= MAX_CALLERS);
        assert!(callers.by_pid.contains_key(&(MAX_CALLERS as u32 * 3)));
    }
}
