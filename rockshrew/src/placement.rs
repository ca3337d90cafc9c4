//! Where a thread runs: its scheduling priority (nice value) and the CPUs it may use. The
//! indexer's thread and the view threads each get one ([`crate::cli`]'s `--indexer-nice`,
//! `--indexer-cores`, `--view-nice`, `--view-cores`), so that busy views cannot starve
//! indexing.

use std::str::FromStr;

/// A nice value and an optional set of CPUs, applied to the calling thread (threads it starts
/// later inherit both).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// The nice value, -20 (first) to 19 (last); 0 is the default of every thread. Lowering it
    /// below the current value needs `CAP_SYS_NICE`.
    pub nice: i32,
    /// The CPUs the thread may run on (`None`: any).
    pub cores: Option<CpuList>,
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
    /// Applies the nice value and CPU set to the calling thread.
    pub fn apply_to_current_thread(&self) -> Result<(), PlacementError> {
        if self.nice != 0 {
            rustix::process::setpriority_process(Some(rustix::thread::gettid()), self.nice)
                .map_err(|e| PlacementError::Nice {
                    nice: self.nice,
                    source: e.into(),
                })?;
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
                cores: None,
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
}
