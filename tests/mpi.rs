//! For the Slurm tests: a busybox image with an MPI hello world (compiled here with mpicc)
//! that binds the host's /usr for the MPI libraries.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::container::TEST_USER;
use crate::sys::is_root;

/// Builds the image in a fresh directory under `base`; its path. `/hello` prints
/// `rank R of N: sum S`, S the sum of every rank's number (an `MPI_Allreduce`).
pub fn mpi_image_in(base: &Path) -> PathBuf {
    let dir = base.join(format!("ch-run-mpi-{}", std::process::id()));
    let root = dir.join("root");
    let _ = std::fs::remove_dir_all(&dir);
    for d in ["bin", "etc", "dev", "proc", "sys", "tmp", "home", "usr"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(
        dir.join("hello.c"),
        "#include <mpi.h>\n#include <stdio.h>\nint main(int c, char **v) {\n  int rank, size, sum = 0;\n  MPI_Init(&c, &v);\n  MPI_Comm_rank(MPI_COMM_WORLD, &rank);\n  MPI_Comm_size(MPI_COMM_WORLD, &size);\n  MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);\n  printf(\"rank %d of %d: sum %d\\n\", rank, size, sum);\n  MPI_Finalize();\n  return 0;\n}\n",
    )
    .unwrap();
    let ok = Command::new("mpicc")
        .arg("-o")
        .arg(root.join("hello"))
        .arg(dir.join("hello.c"))
        .status()
        .unwrap();
    assert!(
        ok.success(),
        "mpicc failed (libopenmpi-dev; scripts/slurm-up.sh installs it)"
    );
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
    std::os::unix::fs::symlink("usr/lib64", root.join("lib64")).unwrap();
    for f in ["etc/passwd", "etc/group", "etc/hosts"] {
        std::fs::write(root.join(f), "").unwrap();
    }
    if is_root() {
        Command::new("chown")
            .args(["-R", &format!("{TEST_USER}:{TEST_USER}")])
            .arg(&root)
            .status()
            .unwrap();
    }
    let image = dir.join("mpi.sqfs");
    let ok = Command::new("mksquashfs")
        .arg(&root)
        .arg(&image)
        .args(["-noappend", "-quiet", "-no-progress"])
        .status()
        .unwrap();
    assert!(ok.success());
    Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&dir)
        .status()
        .unwrap();
    image
}
