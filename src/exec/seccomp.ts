/**
 * Docker's default seccomp profile, as data, and its rendering into the runtime spec's
 * `linux.seccomp` for a capability set and an architecture. The facts (which system calls,
 * on which conditions) are those of docker's default profile (moby's profiles/seccomp); a
 * call the profile does not allow fails with EPERM.
 *
 * A rule applies when every condition of `when` holds (a capability in the set, the
 * architecture) and no condition of `unless` does, as docker's includes/excludes.
 */

export interface SeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: 'SCMP_CMP_EQ' | 'SCMP_CMP_NE' | 'SCMP_CMP_MASKED_EQ';
}

export interface SeccompRule {
  names: string[];
  action: 'SCMP_ACT_ALLOW' | 'SCMP_ACT_ERRNO';
  errnoRet?: number;
  args?: SeccompArg[];
}

export interface LinuxSeccomp {
  defaultAction: 'SCMP_ACT_ERRNO';
  defaultErrnoRet: number;
  architectures: string[];
  syscalls: SeccompRule[];
}

interface ProfileRule {
  names: string;
  action?: 'SCMP_ACT_ERRNO';
  errnoRet?: number;
  args?: SeccompArg[];
  when?: { caps?: string[]; arches?: string[] };
  unless?: { caps?: string[]; arches?: string[] };
}

const EPERM = 1;
const ENOSYS = 38;
/** CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP */
const CLONE_NAMESPACE_FLAGS = 0x7e020000;

/** System calls every container may make. */
const ALWAYS = `
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2
dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64
fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl
fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64
fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_time64 futex_waitv
futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid
getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid
getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list
getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32
getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl
io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup
io_submit io_uring_enter io_uring_register io_uring_setup ipc kill landlock_add_rule
landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat listen
listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise membarrier
memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2
mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall
munmap name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause pidfd_open
pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl
pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev
pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64
recvmsg remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir rseq
rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr
sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler
sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr
sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid
setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority setregid
setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit
set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32 setxattr shmat
shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn socketcall
socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat sync sync_file_range
syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime
timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64
timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink
unlinkat utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
process_vm_readv process_vm_writev ptrace`;

const eq = (index: number, value: number): SeccompArg => ({ index, value, op: 'SCMP_CMP_EQ' });

/** The conditional part of the profile. */
const RULES: ProfileRule[] = [
  // any socket family but AF_VSOCK (40)
  { names: 'socket', args: [{ index: 0, value: 40, op: 'SCMP_CMP_NE' }] },
  // personality: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and the query (0xffffffff)
  ...[0, 8, 0x20000, 0x20008, 0xffffffff].map((v): ProfileRule => ({ names: 'personality', args: [eq(0, v)] })),
  { names: 'sync_file_range2 swapcontext', when: { arches: ['ppc64le'] } },
  { names: 'arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls', when: { arches: ['arm', 'arm64'] } },
  { names: 'arch_prctl', when: { arches: ['amd64', 'x32'] } },
  { names: 'modify_ldt', when: { arches: ['amd64', 'x32', 'x86'] } },
  { names: 's390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr', when: { arches: ['s390', 's390x'] } },
  { names: 'riscv_flush_icache', when: { arches: ['riscv64'] } },
  { names: 'open_by_handle_at', when: { caps: ['CAP_DAC_READ_SEARCH'] } },
  {
    names:
      'bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog umount umount2 unshare',
    when: { caps: ['CAP_SYS_ADMIN'] },
  },
  // without CAP_SYS_ADMIN: clone without namespace flags (the flags are the second argument on s390)
  { names: 'clone', args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }], unless: { caps: ['CAP_SYS_ADMIN'], arches: ['s390', 's390x'] } },
  { names: 'clone', args: [{ index: 1, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }], when: { arches: ['s390', 's390x'] }, unless: { caps: ['CAP_SYS_ADMIN'] } },
  // clone3 cannot be filtered by its flags: ENOSYS makes the C library fall back to clone
  { names: 'clone3', action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS, unless: { caps: ['CAP_SYS_ADMIN'] } },
  { names: 'reboot', when: { caps: ['CAP_SYS_BOOT'] } },
  { names: 'chroot', when: { caps: ['CAP_SYS_CHROOT'] } },
  { names: 'delete_module init_module finit_module', when: { caps: ['CAP_SYS_MODULE'] } },
  { names: 'acct', when: { caps: ['CAP_SYS_PACCT'] } },
  { names: 'kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace', when: { caps: ['CAP_SYS_PTRACE'] } },
  { names: 'iopl ioperm', when: { caps: ['CAP_SYS_RAWIO'] } },
  { names: 'settimeofday stime clock_settime clock_settime64', when: { caps: ['CAP_SYS_TIME'] } },
  { names: 'vhangup', when: { caps: ['CAP_SYS_TTY_CONFIG'] } },
  { names: 'get_mempolicy mbind set_mempolicy set_mempolicy_home_node', when: { caps: ['CAP_SYS_NICE'] } },
  { names: 'syslog', when: { caps: ['CAP_SYSLOG'] } },
  { names: 'bpf', when: { caps: ['CAP_BPF'] } },
  { names: 'perf_event_open', when: { caps: ['CAP_PERFMON'] } },
];

/** Node's process.arch as the profile's (Go's) architecture names. */
const GO_ARCH: Record<string, string> = { x64: 'amd64', ia32: 'x86', arm: 'arm', arm64: 'arm64', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', mips64el: 'mips64le' };

/** The seccomp architectures a filter for the host covers (the native one and its compat modes). */
const SECCOMP_ARCHES: Record<string, string[]> = {
  amd64: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
  x86: ['SCMP_ARCH_X86'],
  arm64: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
  arm: ['SCMP_ARCH_ARM'],
  ppc64le: ['SCMP_ARCH_PPC64LE'],
  s390x: ['SCMP_ARCH_S390X', 'SCMP_ARCH_S390'],
  riscv64: ['SCMP_ARCH_RISCV64'],
  mips64le: ['SCMP_ARCH_MIPSEL64', 'SCMP_ARCH_MIPSEL', 'SCMP_ARCH_MIPSEL64N32'],
};

function holds(cond: { caps?: string[]; arches?: string[] } | undefined, caps: ReadonlySet<string>, arch: string, all: boolean): boolean {
  if (!cond) return all;
  const tests: boolean[] = [];
  if (cond.caps) tests.push(cond.caps.some((c) => caps.has(c)));
  if (cond.arches) tests.push(cond.arches.includes(arch));
  return all ? tests.every(Boolean) : tests.some(Boolean);
}

/**
 * Docker's default profile for a process with `capabilities`, on the host's architecture
 * (`arch` as node names it; a RUN for another platform runs under the host's emulator).
 */
export function defaultSeccompProfile(capabilities: readonly string[], arch: string = process.arch): LinuxSeccomp {
  const goArch = GO_ARCH[arch] ?? arch;
  const caps = new Set(capabilities);
  const syscalls: SeccompRule[] = [{ names: ALWAYS.trim().split(/\s+/), action: 'SCMP_ACT_ALLOW' }];
  for (const r of RULES) {
    if (!holds(r.when, caps, goArch, true)) continue;
    if (r.unless && holds(r.unless, caps, goArch, false)) continue;
    const rule: SeccompRule = { names: r.names.split(' '), action: r.action ?? 'SCMP_ACT_ALLOW' };
    if (r.errnoRet !== undefined) rule.errnoRet = r.errnoRet;
    if (r.args) rule.args = r.args;
    syscalls.push(rule);
  }
  return { defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: EPERM, architectures: SECCOMP_ARCHES[goArch] ?? [], syscalls };
}
