//! This node's entry of Slurm's `SLURM_STEP_TASKS_PER_NODE`.
//!
//! Slurm gives every task of a step the number of tasks on each of the step's nodes, in the
//! order of the step's node list, a run of equal counts written once with its length:
//! `3(x2),2` is 3, 3 and 2 tasks (`-n 8 -N 3`). A task's own node is entry `SLURM_NODEID`,
//! the node's index in the step (Slurm's srun(1), "OUTPUT ENVIRONMENT VARIABLES").
//!
//! Charliecloud reads the leading number only (bin/ch-run.c, `parse_int` with `extra_ok`),
//! which is right only where every node has as many tasks: with `-n 5 -N 2` (`3,2`) the
//! second node's two ranks wait for a third peer that never comes.

use crate::failure::Failure;

/// One entry of the list: `count` tasks on each of `nodes` nodes.
struct Run {
    count: u32,
    nodes: u64,
}

fn bad(list: &str, why: &str) -> Failure {
    Failure::Runtime(format!("SLURM_STEP_TASKS_PER_NODE: {why}: {list}"))
}

fn number<T: std::str::FromStr>(list: &str, text: &str) -> Result<T, Failure> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(list, "not a list of task counts"));
    }
    text.parse().map_err(|_| bad(list, "number out of range"))
}

fn runs(list: &str) -> Result<Vec<Run>, Failure> {
    list.split(',')
        .map(|entry| match entry.split_once("(x") {
            Some((count, repeat)) => {
                let repeat = repeat
                    .strip_suffix(')')
                    .ok_or_else(|| bad(list, "not a list of task counts"))?;
                Ok(Run {
                    count: number(list, count)?,
                    nodes: number(list, repeat)?,
                })
            }
            None => Ok(Run {
                count: number(list, entry)?,
                nodes: 1,
            }),
        })
        .collect()
}

/// The number of tasks on node `node_id` (`SLURM_NODEID`) of the step whose
/// `SLURM_STEP_TASKS_PER_NODE` is `list`; without a node id, the first (as Charliecloud reads
/// it).
pub fn on_node(list: &str, node_id: Option<&str>) -> Result<u32, Failure> {
    let runs = runs(list.trim())?;
    let Some(id) = node_id else {
        return Ok(runs[0].count);
    };
    let mut index: u64 = id
        .trim()
        .parse()
        .map_err(|_| Failure::Runtime(format!("SLURM_NODEID: not a node index: {id}")))?;
    for run in &runs {
        if index < run.nodes {
            return Ok(run.count);
        }
        index -= run.nodes;
    }
    Err(bad(
        list,
        &format!("no entry for node {} (SLURM_NODEID)", id.trim()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_gets_its_own_count() {
        // -n 8 -N 2, -n 5 -N 2, -n 8 -N 3, and a long uneven list.
        assert_eq!(on_node("4(x2)", Some("0")).unwrap(), 4);
        assert_eq!(on_node("4(x2)", Some("1")).unwrap(), 4);
        assert_eq!(on_node("3,2", Some("0")).unwrap(), 3);
        assert_eq!(on_node("3,2", Some("1")).unwrap(), 2);
        assert_eq!(on_node("3(x2),2", Some("1")).unwrap(), 3);
        assert_eq!(on_node("3(x2),2", Some("2")).unwrap(), 2);
        let list = "2(x3),1,5(x4000000000),7";
        let expect: [(u64, u32); 6] = [
            (0, 2),
            (2, 2),
            (3, 1),
            (4, 5),
            (4_000_000_003, 5),
            (4_000_000_004, 7),
        ];
        for (node, count) in expect {
            assert_eq!(
                on_node(list, Some(&node.to_string())).unwrap(),
                count,
                "{node}"
            );
        }
    }

    #[test]
    fn without_a_node_id_the_first_count() {
        assert_eq!(on_node("2(x3)", None).unwrap(), 2);
        assert_eq!(on_node("3,2", None).unwrap(), 3);
        assert_eq!(on_node("16", None).unwrap(), 16);
    }

    #[test]
    fn what_slurm_never_writes_is_one_clear_error() {
        for (list, node) in [
            ("", "0"),
            ("x", "0"),
            ("3,", "0"),
            ("3(x2", "0"),
            ("3(2)", "0"),
            ("-1", "0"),
            ("3(x)", "0"),
            ("99999999999", "0"),
            ("1(x99999999999999999999)", "0"),
        ] {
            let e = on_node(list, Some(node)).unwrap_err();
            assert!(
                e.message().starts_with("SLURM_STEP_TASKS_PER_NODE: "),
                "{list}: {}",
                e.message()
            );
        }
        let e = on_node("3,2", Some("2")).unwrap_err();
        assert_eq!(
            e.message(),
            "SLURM_STEP_TASKS_PER_NODE: no entry for node 2 (SLURM_NODEID): 3,2"
        );
        let e = on_node("3,2", Some("a")).unwrap_err();
        assert_eq!(e.message(), "SLURM_NODEID: not a node index: a");
    }
}
