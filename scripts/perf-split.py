#!/usr/bin/python3
"""perf-split.py - where sluiced's CPU goes on net_tap: the tap device or our code.

    perf record -F 999 -g -p "$(pidof sluiced)" -o perf.data -- sleep 6
    perf script -i perf.data | scripts/perf-split.py

Each sample is put in one class by its call stack (first match wins):
  tap rx trigger   net_tap raises an rt-signal per packet it receives (F_SETSIG on
                   the tap fd): signal delivery, handler and return, on any thread
  tap write        writev() to the tap; the peer's kernel stack runs inside it
  tap read         readv() from the tap
  idle sleep       the worker's usleep() after idle_polls empty polls
  log io_uring     io_uring_enter and io-wq threads
  clock_gettime    the vDSO clock read of each poll pass
  other kernel     per thread; then user code per thread
Used for docs/BENCHMARKS.md "TCP ingest".
"""
import collections
import sys

SIGNAL = ("get_signal", "signal_setup_done", "do_sigtimedwait", "rt_sigreturn",
          "restore_sigcontext", "copy_fpstate_to_sigframe", "arch_do_signal_or_restart",
          "__sigtimedwait", "restore_fpregs_from_fpstate", "restore_altstack",
          "setup_rt_frame", "tap_trigger_cb", "__restore_rt")
PEER_STACK = ("netif_receive_skb", "ip_rcv", "tcp_v4_rcv", "udp_rcv")


def classify(comm, frames):
    syms = " ".join(sym for sym, _ in frames)
    top_sym, top_dso = frames[0] if frames else ("?", "?")
    if any(s in syms for s in SIGNAL):
        return "tap rx trigger: an rt-signal per packet"
    if "tun_get_user" in syms or "tun_chr_write_iter" in syms:
        if any(s in syms for s in PEER_STACK):
            return "tap write: the peer's kernel stack (in our thread)"
        return "tap write: syscall + copy"
    if "tun_chr_read_iter" in syms or "tun_do_read" in syms:
        return "tap read: syscall + copy"
    if "nanosleep" in syms:
        return "idle sleep (usleep) + scheduling"
    if "io_uring" in syms or comm.startswith("iou-"):
        return "log: io_uring"
    if "clock_gettime" in top_sym:
        return "clock_gettime (vDSO)"
    if top_dso.startswith("[kernel"):
        return "other kernel (" + comm + ")"
    return "user: " + ("dataplane worker (ours + DPDK)" if comm.startswith("rte-worker")
                       else comm)


def main():
    classes = collections.Counter()
    comm, frames = None, []

    def flush():
        if comm is not None:
            classes[classify(comm, frames)] += 1

    for line in sys.stdin:
        if not line.strip():
            flush()
            comm, frames = None, []
        elif not line[0].isspace():
            comm, frames = line.split()[0], []
        else:
            parts = line.split(None, 2)
            if len(parts) >= 2:
                dso = parts[2].strip().strip("()") if len(parts) == 3 else "?"
                frames.append((parts[1].split("+")[0], dso))
    flush()
    total = sum(classes.values())
    for name, count in classes.most_common():
        print(f"{100.0 * count / total:5.1f}%  {name}")
    print(f"{total} samples")


if __name__ == "__main__":
    main()
