//! Where a thread runs: its scheduling class, priority (nice value), time slice and the CPUs it
//! may use. The indexer's thread, the view threads and the server's threads each get one
//! ([`crate::cli`]'s `--indexer-nice`, `--indexer-cores`, `--view-class`, `--view-nice`,
//! `--view-cores`, `--rpc-slice-us`), so that busy views cannot starve indexing and a cheap
//! call is answered at once even while both of them keep every CPU busy.

use std::str::FromStr;
use std::time::Duration;

/// A scheduling class, a nice value, a time slice and an optional set of CPUs, applied to the
/// calling thread (threads it starts later inherit them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// The nice value, -20 (first) to 19 (last); 0 (the default of every thread) leaves the
    /// thread's own. Lowering it below the current value needs `CAP_SYS_NICE`. It does not
    /// apply in [`Class::Idle`].
    pub nice: i32,
    /// The CPUs the thread may run on (`None`: any).
    pub cores: Option<CpuList>,
    /// The scheduling class (default [`Class::Normal`]).
    pub class: Class,
    /// The thread's time slice under Linux's EEVDF scheduler (Linux 6.12 and later; earlier
    /// kernels ignore it). A thread with a short slice is run soon after it wakes, ahead of
    /// threads in the middle of a longer one. The kernel keeps it between 0.1 and 100 ms.
    /// `None` (the default): the kernel's own (0.7 ms x (1 + log2 of the CPU count): 1.4 ms on 2).
    pub slice: Option<Duration>,
}

/// A thread's scheduling class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Class {
    /// `SCHED_OTHER` at the placement's nice value: the default of every thread.
    #[default]
    Normal,
    /// `SCHED_IDLE`: the thread runs only on CPU time no other thread wants, and a normal
    /// thread that wakes takes its CPU at once. Any thread may move itself here.
    Idle,
    /// `SCHED_FIFO` at the lowest real-time priority (1): the thread takes a CPU the moment it
    /// wakes, ahead of every normal thread, and keeps it until it blocks. Needs
    /// `CAP_SYS_NICE`; the kernel's real-time throttling (by default 95% of each second) still
    /// bounds it. Only for threads that do little work per wake-up (`--rpc-realtime`), so it is
    /// not offered as a `--view-class`.
    #[value(skip)]
    Realtime,
}

/// A set of CPU numbers, written like `0-3,6` (the kernel's cpuset list format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

/// Why a CPU list could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid CPU list {0:?}: expected numbers and ranges such as 0-3,6")]
pub struct BadCpuList(String);

impl FromStr for CpuList {
    type Err = BadCpuList;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadCpuList(text.to_string());
        let mut cpus = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => (a.trim().parse(), b.trim().parse()),
                None => (part.parse(), part.parse()),
            };
            let (first, last): (usize, usize) =
                (first.map_err(|_| bad())?, last.map_err(|_| bad())?);
            if first > last || last >= rustix::thread::CpuSet::MAX_CPU {
                return Err(bad());
            }
            cpus.extend(first..=last);
        }
        if cpus.is_empty() {
            return Err(bad());
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(Self(cpus))
    }
}

/// Why a placement could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// `setpriority` refused the nice value.
    #[error("cannot set the nice value {nice} of a thread: {source}")]
    Nice {
        /// The value asked for.
        nice: i32,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// `sched_setattr` refused the class or the time slice.
    #[error(
        "cannot set the scheduling class {class:?} (time slice {slice:?}) of a thread: {source}"
    )]
    Class {
        /// The class asked for.
        class: Class,
        /// The slice asked for.
        slice: Option<Duration>,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// `sched_setaffinity` refused the CPU set (a CPU that does not exist, say).
    #[error("cannot pin a thread to CPUs {cpus:?}: {source}")]
    Cores {
        /// The CPUs asked for.
        cpus: Vec<usize>,
        /// The kernel's answer.
        source: std::io::Error,
    },
}

impl Placement {
    /// Applies the nice value, class, time slice and CPU set to the calling thread.
    pub fn apply_to_current_thread(&self) -> Result<(), PlacementError> {
        if self.nice != 0 {
            rustix::process::setpriority_process(Some(rustix::thread::gettid()), self.nice)
                .map_err(|e| PlacementError::Nice {
                    nice: self.nice,
                    source: e.into(),
                })?;
        }
        if self.class != Class::Normal || self.slice.is_some() {
            let class_error = |source| PlacementError::Class {
                class: self.class,
                slice: self.slice,
                source,
            };
            let nice = current_nice().map_err(class_error)?;
            sched::set_current_thread(self.class, nice, self.slice).map_err(class_error)?;
        }
        if let Some(CpuList(cpus)) = &self.cores {
            let mut set = rustix::thread::CpuSet::new();
            for &cpu in cpus {
                set.set(cpu);
            }
            rustix::thread::sched_setaffinity(None, &set).map_err(|e| PlacementError::Cores {
                cpus: cpus.clone(),
                source: e.into(),
            })?;
        }
        Ok(())
    }
}

/// The calling thread's nice value.
pub fn current_nice() -> std::io::Result<i32> {
    Ok(rustix::process::getpriority_process(Some(
        rustix::thread::gettid(),
    ))?)
}

/// The one system call rustix does not wrap.
#[allow(unsafe_code)]
mod sched {
    use super::Class;
    use std::time::Duration;

    /// `struct sched_attr` of `sched_setattr(2)`, in its first version (48 bytes).
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }

    /// `SCHED_OTHER`, `SCHED_FIFO` and `SCHED_IDLE` of `sched(7)`.
    const SCHED_OTHER: u32 = 0;
    const SCHED_FIFO: u32 = 1;
    const SCHED_IDLE: u32 = 5;

    /// Sets the calling thread's policy, nice value and (for EEVDF) time slice.
    pub(super) fn set_current_thread(
        class: Class,
        nice: i32,
        slice: Option<Duration>,
    ) -> std::io::Result<()> {
        let attr = SchedAttr {
            size: std::mem::size_of::<SchedAttr>() as u32,
            policy: match class {
                Class::Normal => SCHED_OTHER,
                Class::Idle => SCHED_IDLE,
                Class::Realtime => SCHED_FIFO,
            },
            flags: 0,
            nice,
            priority: u32::from(class == Class::Realtime),
            runtime: slice.map_or(0, |s| u64::try_from(s.as_nanos()).unwrap_or(u64::MAX)),
            deadline: 0,
            period: 0,
        };
        // SAFETY: `attr` is a valid, initialised `struct sched_attr` whose `size` field states
        // its length; the kernel only reads it during the call, and pid 0 is the calling
        // thread.
        let result =
            unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0u32) };
        if result == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(
            "0-2,5".parse::<CpuList>().unwrap(),
            CpuList(vec![0, 1, 2, 5])
        );
        assert_eq!("3".parse::<CpuList>().unwrap(), CpuList(vec![3]));
        assert_eq!("1,1,0".parse::<CpuList>().unwrap(), CpuList(vec![0, 1]));
        for bad in ["", "a", "3-1", "1-", "99999"] {
            assert!(bad.parse::<CpuList>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_thread_gets_its_nice_value_and_its_children_inherit_it() {
        let niced = std::thread::spawn(|| {
            let before = current_nice().unwrap();
            Placement {
                nice: before + 3,
                ..Placement::default()
            }
            .apply_to_current_thread()
            .unwrap();
            let child = std::thread::spawn(|| current_nice().unwrap())
                .join()
                .unwrap();
            (before, current_nice().unwrap(), child)
        })
        .join()
        .unwrap();
        let (before, after, child) = niced;
        assert_eq!(after, (before + 3).min(19));
        assert_eq!(child, after);
        // The other threads of the process keep theirs.
        assert_eq!(current_nice().unwrap(), before);
    }

    /// The calling thread's scheduling policy and time slice in ns, from `/proc`.
    fn policy_and_slice() -> (u32, Option<u64>) {
        let sched = std::fs::read_to_string("/proc/thread-self/sched").unwrap();
        let field = |name: &str| {
            sched
                .lines()
                .find(|l| l.split(':').next().map(str::trim) == Some(name))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().parse::<u64>().unwrap())
        };
        (field("policy").unwrap() as u32, field("se.slice"))
    }

    #[test]
    fn a_thread_gets_its_class_and_time_slice() {
        let (policy, slice) = std::thread::spawn(|| {
            Placement {
                slice: Some(Duration::from_micros(200)),
                ..Placement::default()
            }
            .apply_to_current_thread()
            .unwrap();
            policy_and_slice()
        })
        .join()
        .unwrap();
        assert_eq!(policy, 0, "SCHED_OTHER");
        // Kernels before 6.12 have no per-thread slice (and may not show one).
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut numbers = release
            .split(['.', '-'])
            .map(|n| n.parse::<u32>().unwrap_or(0));
        let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
        if let Some(slice) = slice
            && version >= (6, 12)
        {
            assert_eq!(slice, 200_000);
        }
        let idle = std::thread::spawn(|| {
            Placement {
                class: Class::Idle,
                ..Placement::default()
            }
            .apply_to_current_thread()
            .unwrap();
            policy_and_slice().0
        })
        .join()
        .unwrap();
        assert_eq!(idle, 5, "SCHED_IDLE");
        assert_eq!(policy_and_slice().0, 0, "the other threads keep theirs");
    }

    #[test]
    fn the_real_time_class_is_fifo_or_a_refusal_that_says_so() {
        let (applied, policy) = std::thread::spawn(|| {
            let applied = Placement {
                class: Class::Realtime,
                slice: Some(Duration::from_micros(100)),
                ..Placement::default()
            }
            .apply_to_current_thread();
            (applied, policy_and_slice().0)
        })
        .join()
        .unwrap();
        match applied {
            Ok(()) => assert_eq!(policy, 1, "SCHED_FIFO"),
            // Without CAP_SYS_NICE: refused, and the thread keeps its class.
            Err(err) => {
                assert!(err.to_string().contains("Realtime"), "{err}");
                assert_eq!(policy, 0, "SCHED_OTHER");
            }
        }
    }
}
