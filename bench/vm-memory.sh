# Sourced by the benchmarks that drop the page cache between samples. Holds the virtual
# machine's memory still for the run.
#
# Why: this project's machines are virtual machines whose balloon device has free page
# reporting (virtio-balloon, VIRTIO_BALLOON_F_REPORTING): a while after the guest frees
# memory (dropping the page cache frees a GiB or more per sample), the kernel hands the
# free 2 MiB blocks back to the host, and the next first touch of each of their pages
# faults on the host. The guest sees that as a memcpy many times slower, charged to
# whichever process touched the page first: for a cold read, the FUSE daemon's copy into
# the page cache, or the kernel driver's decompression into it. Measured on a cold
# sequential read of the 1 GiB lz4 file through squashfuse-rs, 10 in a row: with
# reporting on, the daemon's CPU was 0.71-0.75 s in most runs and 0.87, 1.09 and 2.81 s
# in others (2.81 s: 81% of it in the kernel's memcpy); with reporting off and the free
# memory touched once, 0.71-0.80 s in every run (bench/README.md, "The machine's memory").
#
# hold_vm_memory: turns reporting off (page_reporting_order past the largest block order),
# touches the free memory once so the host backs all of it, and puts the setting back at
# exit. Does nothing where there is no free page reporting. Every contender gains alike.
hold_vm_memory() {
  local knob=/sys/module/page_reporting/parameters/page_reporting_order
  [ -w "$knob" ] || return 0
  vm_memory_order=$(cat "$knob")
  echo 11 >"$knob" || return 0
  trap 'echo "$vm_memory_order" >/sys/module/page_reporting/parameters/page_reporting_order' EXIT
  # All free memory but 1 GiB, touched a page at a time, then freed (it stays backed).
  local mib
  mib=$(awk '/^MemFree:/ {print int($2 / 1024) - 1024}' /proc/meminfo)
  [ "$mib" -gt 0 ] && python3 -c '
import mmap, sys
n = int(sys.argv[1]) << 20
m = mmap.mmap(-1, n)
for i in range(0, n, 4096):
    m[i] = 1
' "$mib"
  vm_memory_note="free page reporting off during the run (page_reporting_order $vm_memory_order → 11), free memory touched once before it"
}
vm_memory_note="no free page reporting to turn off"
