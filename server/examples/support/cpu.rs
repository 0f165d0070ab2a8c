//! CPU seconds used by the processes a benchmark measures: the broker's
//! Erlang VM, this process (Redrive runs in it) and the database server.
//! On two cores shared by all three, their CPU over the cores is the least
//! wall time any schedule could take: the floor a ratio is read against.

/// CPU seconds a process has used so far (user + system, from
/// `/proc/<pid>/stat`; clock ticks are 1/100 s on Linux).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// The processes whose command is `name`.
fn processes(name: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// CPU seconds so far of the broker, this process, and the database server
/// (PostgreSQL runs a process per connection; SQLite runs inside Redrive).
fn now() -> Cpu {
    Cpu {
        broker: processes("beam.smp").iter().map(|p| cpu_seconds(p)).sum(),
        redrive: cpu_seconds("self"),
        database: processes("postgres").iter().map(|p| cpu_seconds(p)).sum(),
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Cpu {
    pub broker: f64,
    pub redrive: f64,
    pub database: f64,
}

impl Cpu {
    pub fn total(&self) -> f64 {
        self.broker + self.redrive + self.database
    }

    /// The most messages a second `n` messages could move at with this CPU
    /// on this machine's cores, however well the processes overlapped.
    pub fn ceiling(&self, n: f64) -> f64 {
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
        n / (self.total() / cores)
    }
}

impl std::fmt::Display for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "broker {:.2} s, redrive {:.2} s, database server {:.2} s",
            self.broker, self.redrive, self.database
        )
    }
}

/// Counts CPU from its start. A process that exits meanwhile (a database
/// connection closed) takes its CPU with it: read before anything closes.
pub struct CpuMeter(Cpu);

impl CpuMeter {
    pub fn start() -> Self {
        Self(now())
    }

    pub fn read(&self) -> Cpu {
        let now = now();
        Cpu {
            broker: now.broker - self.0.broker,
            redrive: now.redrive - self.0.redrive,
            database: now.database - self.0.database,
        }
    }
}
