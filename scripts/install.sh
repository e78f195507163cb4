#!/usr/bin/env bash
# Builds and installs sqfs, squashfuse-rs and ch-run with their man pages and bash, zsh and
# fish completions:
#
#   scripts/install.sh [--no-build] [PREFIX]      (PREFIX: default /usr/local)
#
#   PREFIX/bin/                                   sqfs, squashfuse-rs, ch-run
#   PREFIX/share/man/man1/                        sqfs.1, sqfs-{info,ls,cat,extract}.1,
#                                                 squashfuse-rs.1, ch-run.1
#   PREFIX/share/bash-completion/completions/     sqfs, squashfuse-rs, ch-run
#   PREFIX/share/zsh/site-functions/              _sqfs, _squashfuse-rs, _ch-run
#   PREFIX/share/fish/vendor_completions.d/       sqfs.fish, squashfuse-rs.fish, ch-run.fish
#
# DESTDIR, if set, is put before every path (for packaging: DESTDIR=pkg ... /usr).
# --no-build installs what `cargo build --release --workspace` built already (e.g. with
# sudo, when root has no Rust toolchain). The man pages and completions are written by
# the docgen program from the programs' command-line definitions.
set -euo pipefail

usage() { echo "usage: scripts/install.sh [--no-build] [PREFIX]" >&2; exit 2; }

build=1
prefix=/usr/local
case $# in
    0) ;;
    1|2)
        if [[ $1 == --no-build ]]; then build=0; shift; fi
        [[ $# -le 1 ]] || usage
        [[ $# -eq 0 ]] || prefix=$1
        ;;
    *) usage ;;
esac
[[ $prefix == /* ]] || { echo "install.sh: PREFIX must be an absolute path: $prefix" >&2; exit 2; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
target=${CARGO_TARGET_DIR:-$repo/target}
[[ $target == /* ]] || target=$repo/$target
release=$target/release

if [[ $build -eq 1 ]]; then
    if ! command -v cargo >/dev/null && [[ -f ${HOME:-/nonexistent}/.cargo/env ]]; then
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    fi
    cargo build --release --locked -p sqfs-tool -p fusefs -p runtime -p docgen
fi
for bin in sqfs squashfuse-rs ch-run docgen; do
    [[ -x $release/$bin ]] || {
        echo "install.sh: $release/$bin not built (run without --no-build, or cargo build --release --workspace)" >&2
        exit 1
    }
done

# The pages' date: the last commit's, so that the same sources give the same pages.
if [[ -z ${SOURCE_DATE_EPOCH:-} ]] && git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
    SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || true)
    [[ -n $SOURCE_DATE_EPOCH ]] && export SOURCE_DATE_EPOCH || unset SOURCE_DATE_EPOCH
fi
generated=$(mktemp -d)
trap 'rm -rf "$generated"' EXIT
"$release/docgen" "$generated"

root=${DESTDIR:-}$prefix
install -d "$root/bin" "$root/share/man/man1" \
    "$root/share/bash-completion/completions" \
    "$root/share/zsh/site-functions" \
    "$root/share/fish/vendor_completions.d"
# Stripped: the release build keeps line tables (for profiles), 15 times the size.
strip=()
command -v strip >/dev/null && strip=(-s)
for bin in sqfs squashfuse-rs ch-run; do
    install -m 755 "${strip[@]}" "$release/$bin" "$root/bin/$bin"
    install -m 644 "$generated/bash/$bin" "$root/share/bash-completion/completions/$bin"
    install -m 644 "$generated/zsh/_$bin" "$root/share/zsh/site-functions/_$bin"
    install -m 644 "$generated/fish/$bin.fish" "$root/share/fish/vendor_completions.d/$bin.fish"
done
install -m 644 "$generated"/man1/*.1 "$root/share/man/man1/"

echo "installed sqfs, squashfuse-rs and ch-run in $root/bin, their man pages in $root/share/man/man1"
echo "and bash, zsh and fish completions in $root/share"
