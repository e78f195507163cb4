//! A walk's next files, decompressed and pushed into the page cache on another core
//! before the walker asks for them.
//!
//! A walk that reads what it lists (`tar c`, `cp -r`, `grep -r`) lists a directory, then
//! reads its files one after the other in listing order, going into each subdirectory
//! where the listing has it (depth first). Measured during a cold `tar c` of a Debian
//! rootfs image (11,360 entries, zstd): the walk sent 1,961 READs, which took 0.49 s of
//! its 1.41 s (median 145 µs each: a block decompressed on the request path while tar
//! waited), and the two cores were 49% idle. So once the kernel has taken in a listing
//! reply (it asks for the rest of the listing, see `taken_in`), the regular files it
//! linked go to one thread that decompresses their blocks and pushes them (FUSE
//! notify-store), and tar finds them in the page cache. The thread pushes the newest
//! listing first (the directory the walk has just gone into) and goes back to the one it
//! came from after; when the walk lists a subdirectory, it has passed the entries before
//! it (`Stack::entered`).
//!
//! Only while files are being read to their ends (`file_read`): a walk that only lists
//! (`find`, `ls -lR`) must not decompress the image behind it. Each READ that reaches a
//! file's end allows the next `CREDIT` listings to be pushed; pushed files send no READ, so
//! the credit runs out in a long stretch of fully pushed directories, and the next READ
//! starts it again (and pushes the rest of the listing that READ came from, all of its
//! replies: a cold `tar c` of a Debian rootfs had /usr/bin's 331 files listed in two
//! replies after the credit ran out, and none of them pushed). A READ at the start of a
//! file no bigger than a block counts as reaching its end: the rest of its block or tail
//! is pushed with the answer, so no READ of it would (a program that reads only such
//! files' first bytes, `file *`, thus starts pushes as a walk does; reading them to the
//! end did before).
//!
//! Bounded: `MOST_JOBS` listings, `MOST_PENDING` entries in them all and as many waiting,
//! `MOST_BYTES_PER_LISTING` decompressed per listing reply, and the blocks go through the
//! archive's block cache, one at a time.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use fuser::{INodeNo, Notifier};
use sqfs::{Archive, Inode};

use crate::nodes::Nodes;

/// Listings pushed after a READ that reached a file's end.
const CREDIT: u32 = 32;
/// Decompressed bytes pushed for one listing reply at most: a directory of big files
/// is left to the READ path and its sequential prefetch past this.
const MOST_BYTES_PER_LISTING: u64 = 8 << 20;
/// Files up to this size are pushed whole. A bigger one is read by READs of up to the
/// readahead window (1 MiB) with its blocks decompressed ahead by the sequential prefetch
/// (`streams`), and the walk reads it faster than one thread decompresses it: pushed, it
/// was read past by READs while its later blocks were still pushed (the walk of the
/// Debian rootfs: 477 READs of files being pushed, 442 of files a budget or the walk
/// had passed before they came up). Of those, the first blocks are only decompressed
/// into the block cache, so that the first READs find them.
const MOST_PUSHED_FILE: u64 = 1 << 20;
/// Blocks of a bigger file decompressed ahead.
const FIRST_BLOCKS: usize = 2;
/// Listed entries waiting, over all directories, for their listing to go on.
const MOST_PENDING: usize = 8192;
/// Listings being pushed at most (the deepest directories of a walk); the oldest go.
const MOST_JOBS: usize = 64;

/// An entry a listing linked: its node id and, for a regular file, the inode the node
/// stood for (`F`: what a file is known by; the inode, but for the tests).
#[derive(Clone)]
pub struct Listed<F = Arc<Inode>> {
    pub node: u64,
    pub file: Option<F>,
}

/// One listing reply's entries, pushed in order from `next` on.
struct Job<F> {
    id: u64,
    entries: Vec<Listed<F>>,
    next: usize,
    budget: u64,
}

/// The listings being pushed, the newest last: a walk reads the files of the directory it
/// listed last first, then goes on with the rest of the one it came from (depth first).
struct Stack<F> {
    jobs: Vec<Job<F>>,
    /// Jobs ever pushed (the next job's id).
    made: u64,
    stopped: bool,
}

impl<F> Default for Stack<F> {
    fn default() -> Self {
        Stack {
            jobs: Vec::new(),
            made: 0,
            stopped: false,
        }
    }
}

impl<F: Clone> Stack<F> {
    /// The walk lists directory `dir` (or has read file `dir`): it has passed the entries
    /// before it in the listing that holds it, and is done with the listings of the
    /// directories after.
    fn entered(&mut self, dir: u64) {
        for depth in (0..self.jobs.len()).rev() {
            let job = &mut self.jobs[depth];
            if let Some(at) = job.entries[job.next.min(job.entries.len())..]
                .iter()
                .position(|e| e.node == dir)
            {
                job.next += at + 1;
                self.jobs.truncate(depth + 1);
                return;
            }
        }
    }

    /// The next file to push, with its job's id and budget left; jobs pushed in full go.
    fn take(&mut self) -> Option<(u64, F, u64, u64)> {
        while let Some(job) = self.jobs.last_mut() {
            let from = job.next.min(job.entries.len());
            let found = (job.budget > 0)
                .then(|| job.entries[from..].iter().position(|e| e.file.is_some()))
                .flatten();
            if let Some(at) = found {
                job.next = from + at + 1;
                let entry = &job.entries[from + at];
                let file = entry.file.clone()?;
                return Some((entry.node, file, job.id, job.budget));
            }
            self.jobs.pop();
        }
        None
    }

    /// `spent` bytes of job `id`'s budget went into a push.
    fn spend(&mut self, id: u64, spent: u64) {
        if let Some(job) = self.jobs.iter_mut().find(|j| j.id == id) {
            job.budget = job.budget.saturating_sub(spent);
        }
    }

    /// Pushes the entries of `replies` listing replies from `next` on; the oldest
    /// listings go past `MOST_JOBS` of them or `MOST_PENDING` entries in all.
    fn push(&mut self, mut entries: Vec<Listed<F>>, next: usize, replies: u64) {
        entries.drain(..next.min(entries.len()));
        entries.truncate(MOST_PENDING);
        let mut held: usize = self.jobs.iter().map(|j| j.entries.len() - j.next).sum();
        while !self.jobs.is_empty()
            && (self.jobs.len() >= MOST_JOBS || held + entries.len() > MOST_PENDING)
        {
            let gone = self.jobs.remove(0);
            held -= gone.entries.len() - gone.next;
        }
        self.made += 1;
        self.jobs.push(Job {
            id: self.made,
            entries,
            next: 0,
            budget: MOST_BYTES_PER_LISTING.saturating_mul(replies.max(1)),
        });
    }
}

/// Whether a listing taken in is pushed: while files are read to their ends (see the
/// module's text).
struct Credit<F> {
    /// Listings still to push before another READ must reach a file's end.
    left: u32,
    /// The listing last taken in without credit, for the READ that starts the walk again.
    last: Uncredited<F>,
}

/// A directory's listing taken in without credit: a big directory's comes in several
/// replies, and the READ that starts the walk again may be of a file in any of them.
struct Uncredited<F> {
    /// The directory (0: none).
    dir: u64,
    /// The entries of all its replies taken in so far.
    entries: Vec<Listed<F>>,
    /// How many replies.
    replies: u64,
}

impl<F> Default for Uncredited<F> {
    fn default() -> Self {
        Uncredited {
            dir: 0,
            entries: Vec::new(),
            replies: 0,
        }
    }
}

impl<F> Default for Credit<F> {
    fn default() -> Self {
        Credit {
            left: 0,
            last: Uncredited::default(),
        }
    }
}

impl<F> Credit<F> {
    /// A reply of `dir`'s listing was taken in: its entries, if they are to be pushed now.
    fn taken_in(&mut self, dir: u64, entries: Vec<Listed<F>>) -> Option<Vec<Listed<F>>> {
        if self.left > 0 {
            self.left -= 1;
            return Some(entries);
        }
        // Bounded as the pending entries are.
        let last = &mut self.last;
        if last.dir == dir && last.entries.len() + entries.len() <= MOST_PENDING {
            last.entries.extend(entries);
            last.replies += 1;
        } else {
            *last = Uncredited {
                dir,
                entries,
                replies: 1,
            };
        }
        None
    }

    /// `dir` is listed from its start again: what its earlier listing left goes.
    fn listing_started(&mut self, dir: u64) {
        if self.last.dir == dir {
            self.last = Uncredited::default();
        }
    }

    /// A READ reached the end of file `node`: credit for the next listings, and, if there
    /// was none left, the entries to push, from where, and of how many replies (those after
    /// `node`, if it was in the listing last taken in without credit).
    fn file_read(&mut self, node: u64) -> Option<(Vec<Listed<F>>, usize, u64)> {
        if std::mem::replace(&mut self.left, CREDIT) > 0 {
            return None;
        }
        let at = self.last.entries.iter().position(|f| f.node == node)?;
        let last = std::mem::take(&mut self.last);
        Some((last.entries, at + 1, last.replies))
    }
}

struct Shared {
    stack: Mutex<Stack<Arc<Inode>>>,
    work: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Stack<Arc<Inode>>> {
        self.stack.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct PushAhead {
    archive: Arc<Archive>,
    nodes: Arc<Nodes>,
    notifier: Arc<OnceLock<Notifier>>,
    /// By directory: the entries of its last listing reply, until the kernel has taken it in.
    pending: Mutex<HashMap<u64, Vec<Listed>>>,
    credit: Mutex<Credit<Arc<Inode>>>,
    shared: Arc<Shared>,
    /// The pushing thread, started at the first push (false if it could not be: pushing
    /// ahead is then skipped).
    started: OnceLock<bool>,
}

impl PushAhead {
    pub fn new(
        archive: Arc<Archive>,
        nodes: Arc<Nodes>,
        notifier: Arc<OnceLock<Notifier>>,
    ) -> Self {
        PushAhead {
            archive,
            nodes,
            notifier,
            pending: Mutex::new(HashMap::new()),
            credit: Mutex::new(Credit::default()),
            shared: Arc::new(Shared {
                stack: Mutex::new(Stack::default()),
                work: Condvar::new(),
            }),
            started: OnceLock::new(),
        }
    }

    /// The kernel asks for the start of directory `dir`'s listing.
    pub fn entered(&self, dir: u64) {
        self.shared.lock().entered(dir);
        self.credit().listing_started(dir);
    }

    /// A listing reply of directory `dir` linked `entries`, in this order.
    pub fn listed(&self, dir: u64, entries: Vec<Listed>) {
        if entries.is_empty() {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let held: usize = pending.values().map(Vec::len).sum();
        // Bounded: a listing nobody reads on leaves its entries here.
        if held + entries.len() <= MOST_PENDING {
            pending.entry(dir).or_default().extend(entries);
        }
    }

    /// The kernel asks for more of `dir`'s listing: it has taken in the reply before, and
    /// knows its files (a push to a node the kernel does not know is refused).
    pub fn taken_in(&self, dir: u64) {
        let Some(entries) = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&dir)
        else {
            return;
        };
        let now = self.credit().taken_in(dir, entries);
        if let Some(entries) = now {
            self.push(entries, 0, 1);
        }
    }

    /// A READ reached the end of the file with node id `node`: the next listings are
    /// pushed; if none were being pushed, the files after `node` in the last listing too.
    pub fn file_read(&self, node: u64) {
        // The walk is past `node` (it came by READ: the thread had not pushed it yet), and
        // done with the listings of the directories after it: the thread goes on from there
        // rather than pushing what the walk has read.
        self.shared.lock().entered(node);
        let again = self.credit().file_read(node);
        if let Some((entries, next, replies)) = again {
            self.push(entries, next, replies);
        }
    }

    fn credit(&self) -> MutexGuard<'_, Credit<Arc<Inode>>> {
        self.credit.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, entries: Vec<Listed>, next: usize, replies: u64) {
        if !entries.iter().skip(next).any(|e| e.file.is_some()) {
            return;
        }
        if !*self.started.get_or_init(|| self.start()) {
            return;
        }
        self.shared.lock().push(entries, next, replies);
        self.shared.work.notify_one();
    }

    fn start(&self) -> bool {
        let shared = self.shared.clone();
        let archive = self.archive.clone();
        let nodes = self.nodes.clone();
        let notifier = self.notifier.clone();
        std::thread::Builder::new()
            .name("push-ahead".into())
            .spawn(move || push_all(&shared, &archive, &nodes, &notifier))
            .is_ok()
    }
}

impl Drop for PushAhead {
    fn drop(&mut self) {
        self.shared.lock().stopped = true;
        self.shared.work.notify_one();
    }
}

/// The pushing thread: pushes the files of the newest listing first, until the session
/// ends. Request threads never wait on it; it may wait in a push for pages a READ holds
/// locked, which a request thread answers.
fn push_all(shared: &Shared, archive: &Archive, nodes: &Nodes, notifier: &OnceLock<Notifier>) {
    loop {
        let (node, inode, id, budget) = {
            let mut stack = shared.lock();
            loop {
                if stack.stopped {
                    return;
                }
                if let Some(next) = stack.take() {
                    break next;
                }
                stack = shared.work.wait(stack).unwrap_or_else(|e| e.into_inner());
            }
        };
        let Some(n) = notifier.get() else {
            continue;
        };
        let spent = push_file(n, archive, nodes, node, &inode, budget);
        shared.lock().spend(id, spent);
    }
}

/// Pushes the bytes of `file`, block by block from its start, up to about `budget` bytes
/// (a file over `MOST_PUSHED_FILE`: decompresses its first blocks); returns how many it
/// decompressed. Stops at the first block that cannot be read (a
/// damaged image: the READ of it will say so) and when the node no longer stands for the
/// inode listed (the kernel's size for it is then another inode's: fuse_notify_store()
/// extends i_size to the end of what is pushed). Every push is of exactly the bytes the
/// file holds there, so none reaches past its size.
fn push_file(
    n: &Notifier,
    archive: &Archive,
    nodes: &Nodes,
    node: u64,
    inode: &Inode,
    budget: u64,
) -> u64 {
    let Ok(data) = archive.file_data(inode) else {
        return 0;
    };
    if data.size() > MOST_PUSHED_FILE {
        let mut spent = 0;
        for index in 0..data.block_count().min(FIRST_BLOCKS) {
            match archive.data_block(&data, index) {
                Ok(Some(block)) => spent += block.len() as u64,
                Ok(None) => {}
                Err(_) => break,
            }
        }
        return spent;
    }
    let reference = inode.reference();
    let bs = u64::from(archive.superblock().block_size);
    let mut spent = 0u64;
    let push = |at: u64, bytes: &[u8]| -> bool {
        if !nodes.holds(node, reference) {
            return false;
        }
        n.store(INodeNo(node), at, bytes).is_ok()
    };
    for index in 0..data.block_count() {
        if spent >= budget {
            return spent;
        }
        match archive.data_block(&data, index) {
            Ok(Some(block)) => {
                spent += block.len() as u64;
                if !push(index as u64 * bs, &block) {
                    return spent;
                }
            }
            // A hole reads as zeros; left to READ.
            Ok(None) => {}
            Err(_) => return spent,
        }
    }
    if spent >= budget {
        return spent;
    }
    if let Ok(Some((block, tail))) = archive.tail_block(&data) {
        if let Some(bytes) = block.get(tail) {
            spent += bytes.len() as u64;
            push(data.block_count() as u64 * bs, bytes);
        }
    }
    spent
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files (payload: their node id) and, for nodes from 100 on, directories.
    fn listed(nodes: &[u64]) -> Vec<Listed<u64>> {
        nodes
            .iter()
            .map(|&node| Listed {
                node,
                file: (node < 100).then_some(node),
            })
            .collect()
    }

    fn order(stack: &mut Stack<u64>) -> Vec<u64> {
        std::iter::from_fn(|| {
            stack.take().map(|(node, file, ..)| {
                assert_eq!(node, file);
                node
            })
        })
        .collect()
    }

    #[test]
    fn the_newest_listing_goes_first_then_the_rest_of_the_one_before() {
        let mut stack = Stack::default();
        stack.push(listed(&[1, 2, 100, 3, 4]), 0, 1);
        assert_eq!(stack.take().unwrap().0, 1);
        stack.push(listed(&[10, 101, 11]), 0, 1);
        assert_eq!(
            order(&mut stack),
            vec![10, 11, 2, 3, 4],
            "directories skipped"
        );
        assert!(stack.jobs.is_empty(), "pushed in full, gone");
    }

    #[test]
    fn listing_a_subdirectory_passes_the_entries_before_it_and_ends_deeper_listings() {
        let mut stack = Stack::default();
        stack.push(listed(&[1, 2, 103, 4, 5]), 0, 1);
        stack.push(listed(&[10, 11]), 0, 1);
        // The walk lists 103 (in the first listing): done with 10, 11 and with 1 and 2.
        stack.entered(103);
        assert_eq!(order(&mut stack), vec![4, 5]);
        // Unknown directories change nothing.
        stack.push(listed(&[20, 21]), 0, 1);
        stack.entered(199);
        assert_eq!(order(&mut stack), vec![20, 21]);
    }

    fn nodes(entries: &[Listed<u64>]) -> Vec<u64> {
        entries.iter().map(|e| e.node).collect()
    }

    #[test]
    fn listings_are_pushed_while_files_are_read_to_their_ends() {
        let mut credit = Credit::default();
        // A walk that only lists pushes nothing.
        assert!(credit.taken_in(100, listed(&[1, 2])).is_none());
        // A READ to a file's end: the rest of its listing now, the next listings after.
        let (entries, next, replies) = credit.file_read(1).expect("pushed again");
        assert_eq!((nodes(&entries), next, replies), (vec![1, 2], 1, 1));
        for dir in 0..CREDIT as u64 {
            assert!(credit.taken_in(101 + dir, listed(&[3])).is_some());
        }
        assert!(credit.taken_in(200, listed(&[4])).is_none(), "credit spent");
        assert!(credit.file_read(99).is_none(), "a file of no listing kept");
        assert!(credit.taken_in(201, listed(&[5])).is_some(), "credit again");
    }

    #[test]
    fn a_big_directory_listed_in_several_replies_is_pushed_from_the_file_read_in_any() {
        let mut credit = Credit::default();
        assert!(credit.taken_in(300, listed(&[1, 2, 3])).is_none());
        assert!(credit.taken_in(300, listed(&[4, 5])).is_none());
        // The walk reads the first reply's files: the rest of the whole listing goes, with
        // a budget for each reply.
        let (entries, next, replies) = credit.file_read(2).expect("pushed again");
        assert_eq!((nodes(&entries[next..]), replies), (vec![3, 4, 5], 2));
        // Another directory's listing replaces it.
        let mut credit = Credit::default();
        assert!(credit.taken_in(300, listed(&[1])).is_none());
        assert!(credit.taken_in(301, listed(&[2])).is_none());
        assert!(credit.file_read(1).is_none(), "300's listing is gone");
        // A listing over the bound starts again from the reply past it.
        let mut credit = Credit::default();
        assert!(credit.taken_in(301, listed(&[2])).is_none());
        let big: Vec<u64> = (1000..1000 + MOST_PENDING as u64).collect();
        assert!(credit.taken_in(301, listed(&big)).is_none());
        assert_eq!(
            (credit.last.entries.len(), credit.last.replies),
            (MOST_PENDING, 1),
            "bounded"
        );
        assert!(credit.file_read(2).is_none(), "the reply before is gone");
        // Listed again from its start (`ls` twice): the earlier listing goes, not doubled.
        let mut credit = Credit::default();
        assert!(credit.taken_in(302, listed(&[1, 2])).is_none());
        credit.listing_started(302);
        assert!(credit.taken_in(302, listed(&[1, 2])).is_none());
        let (entries, next, replies) = credit.file_read(1).expect("pushed again");
        assert_eq!((nodes(&entries[next..]), replies), (vec![2], 1));
    }

    #[test]
    fn a_listing_stops_at_its_budget_and_the_oldest_go_past_the_bound() {
        let mut stack = Stack::default();
        stack.push(listed(&[1, 2, 3]), 0, 1);
        let (_, _, id, budget) = stack.take().unwrap();
        stack.spend(id, budget);
        assert_eq!(order(&mut stack), Vec::<u64>::new());
        for node in 0..MOST_JOBS as u64 + 3 {
            stack.push(listed(&[node]), 0, 1);
        }
        assert_eq!(stack.jobs.len(), MOST_JOBS);
        assert_eq!(order(&mut stack).last(), Some(&3), "0, 1 and 2 went");
        // A listing of several replies has a budget for each.
        stack.push(listed(&[1, 2]), 0, 3);
        assert_eq!(stack.take().unwrap().3, 3 * MOST_BYTES_PER_LISTING);
        stack.jobs.clear();
        // At most `MOST_PENDING` entries in all: the oldest listings go; what a listing
        // passed is not kept.
        let half: Vec<u64> = (0..MOST_PENDING as u64 / 2).collect();
        stack.push(listed(&half), 0, 1);
        stack.push(listed(&half), 10, 1);
        assert_eq!(stack.jobs[1].entries.len(), MOST_PENDING / 2 - 10);
        stack.push(listed(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), 0, 1);
        assert_eq!(stack.jobs.len(), 2, "the oldest went");
        let held: usize = stack.jobs.iter().map(|j| j.entries.len()).sum();
        assert!(held <= MOST_PENDING, "{held}");
    }
}
