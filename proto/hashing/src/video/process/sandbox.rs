//! Running one decoder process under limits: the input as a sealed `memfd` on stdin, `prlimit`
//! around the program, a watchdog that kills it at the deadline, stderr collected (bounded) by a
//! thread so the child never blocks on it, stdout a pipe that can be grown to hold a frame.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use rustix::fs::{fcntl_add_seals, memfd_create, MemfdFlags, SealFlags};

use crate::video::{VideoError, VideoLimits};

/// Where the decoder programs are. Paths that are not absolute are looked up on `PATH` when a
/// process starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FfmpegTools {
    /// `ffmpeg` (decodes frames).
    pub ffmpeg: PathBuf,
    /// `ffprobe` (reads the header).
    pub ffprobe: PathBuf,
    /// util-linux `prlimit`, which applies the CPU, memory, file and core limits. `None` runs
    /// the decoder without them (deadline and whitelists still apply): only for development on a
    /// system without `prlimit`; a node should never do this.
    pub prlimit: Option<PathBuf>,
}

impl FfmpegTools {
    /// `ffmpeg`, `ffprobe` and `prlimit` from `PATH`, each overridable by `REDLINE_FFMPEG`,
    /// `REDLINE_FFPROBE`, `REDLINE_PRLIMIT`.
    pub fn from_env() -> FfmpegTools {
        let var = |name: &str, default: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(default))
        };
        FfmpegTools {
            ffmpeg: var("REDLINE_FFMPEG", "ffmpeg"),
            ffprobe: var("REDLINE_FFPROBE", "ffprobe"),
            prlimit: Some(var("REDLINE_PRLIMIT", "prlimit")),
        }
    }

    /// Checks that every program can be found, so a node can refuse to start (or disable
    /// video) instead of failing each upload.
    pub fn check(&self) -> Result<(), VideoError> {
        resolve(&self.ffmpeg)?;
        resolve(&self.ffprobe)?;
        if let Some(p) = &self.prlimit {
            resolve(p)?;
        }
        Ok(())
    }
}

impl Default for FfmpegTools {
    fn default() -> Self {
        FfmpegTools::from_env()
    }
}

/// The absolute path of `program`, looked up on `PATH` when it is a bare name (the child runs
/// with an empty environment, so it must not be left to the child's lookup).
fn resolve(program: &Path) -> Result<PathBuf, VideoError> {
    let unavailable = |detail: String| VideoError::DecoderUnavailable {
        program: program.display().to_string(),
        detail,
    };
    if program.components().count() > 1 || program.is_absolute() {
        return if program.is_file() {
            Ok(program.to_path_buf())
        } else {
            Err(unavailable("no such file".into()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .ok_or_else(|| unavailable("not found on PATH".into()))
}

/// The video bytes in anonymous memory, sealed against any change, to be every decoder's stdin.
/// Nothing is written to a filesystem; the memory is freed when the last descriptor closes.
#[derive(Debug)]
pub(crate) struct SealedInput {
    file: File,
}

impl SealedInput {
    pub(crate) fn new(bytes: &[u8]) -> std::io::Result<SealedInput> {
        let fd = memfd_create(
            "redline-video",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        let mut file = File::from(fd);
        file.write_all(bytes)?;
        fcntl_add_seals(
            &file,
            SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
        )?;
        file.seek(SeekFrom::Start(0))?;
        Ok(SealedInput { file })
    }

    fn stdin(&self) -> std::io::Result<Stdio> {
        Ok(Stdio::from(self.file.try_clone()?))
    }
}

/// How much of the decoder's stderr is kept (the rest is read and dropped).
const STDERR_KEEP: usize = 16 << 10;

/// Linux's default pipe size: a smaller frame never shrinks the pipe below it.
const PIPE_MIN: usize = 64 << 10;

/// Largest stdout pipe asked for: Linux's default `/proc/sys/fs/pipe-max-size`, the most an
/// unprivileged process may set.
const PIPE_MAX: usize = 1 << 20;

/// glibc malloc arenas in the child (`MALLOC_ARENA_MAX`). Each arena reserves 64 MiB of address
/// space, and a decoder with several threads would otherwise create one per thread and per core:
/// with 2 arenas, 4K H.264 on 2 or 4 decoding threads fits in the same 640 MiB as on one.
const MALLOC_ARENAS: &str = "2";

/// A running decoder process. Dropping it kills and reaps the child.
#[derive(Debug)]
pub(crate) struct Running {
    child: Arc<Mutex<Child>>,
    stdout: Option<ChildStdout>,
    stderr: Option<JoinHandle<String>>,
    watchdog: Option<(Sender<()>, JoinHandle<bool>)>,
    finished: bool,
}

/// How a decoder process ended.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub status: ExitStatus,
    /// The first [`STDERR_KEEP`] bytes of stderr, lossily decoded.
    pub stderr: String,
    /// The watchdog killed it at the deadline.
    pub timed_out: bool,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.status.success() && !self.timed_out
    }

    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }
}

impl Running {
    /// Starts `program args...` under the limits, reading `input` on stdin, stdout piped.
    pub(crate) fn spawn(
        tools: &FfmpegTools,
        program: &Path,
        args: &[String],
        input: &SealedInput,
        limits: &VideoLimits,
        deadline: Instant,
    ) -> Result<Running, VideoError> {
        let program = resolve(program)?;
        let mut cmd = match &tools.prlimit {
            Some(prlimit) => {
                let mut c = Command::new(resolve(prlimit)?);
                c.arg(format!("--cpu={}", limits.cpu_seconds.max(1)))
                    .arg(format!("--as={}", limits.address_space_bytes))
                    .arg(format!("--nofile={}", limits.max_open_files))
                    // No file can be written, and no core dump (it would hold video bytes).
                    .arg("--fsize=0")
                    .arg("--core=0")
                    .arg("--")
                    .arg(&program);
                c
            }
            None => Command::new(&program),
        };
        cmd.args(args)
            .env_clear()
            .env("MALLOC_ARENA_MAX", MALLOC_ARENAS)
            .current_dir("/")
            .stdin(input.stdin().map_err(|e| spawn_error(&program, e))?)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| spawn_error(&program, e))?;
        let stdout = child.stdout.take();
        let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
        let stderr = std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let room = STDERR_KEEP.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            String::from_utf8_lossy(&kept).into_owned()
        });
        let child = Arc::new(Mutex::new(child));
        let (tx, rx) = mpsc::channel::<()>();
        let watched = Arc::clone(&child);
        let timeout = deadline.saturating_duration_since(Instant::now());
        let watchdog = std::thread::spawn(move || match rx.recv_timeout(timeout) {
            Err(RecvTimeoutError::Timeout) => {
                // The child cannot have been reaped yet: `finish` joins this thread first.
                let _ = lock(&watched).kill();
                true
            }
            _ => false,
        });
        Ok(Running {
            child,
            stdout,
            stderr: Some(stderr),
            watchdog: Some((tx, watchdog)),
            finished: false,
        })
    }

    /// The child's stdout.
    pub(crate) fn stdout(&mut self) -> &mut ChildStdout {
        self.stdout.as_mut().expect("stdout is piped")
    }

    /// Grows the stdout pipe toward `bytes` (at most [`PIPE_MAX`]), so that the child writes a
    /// whole frame before it blocks and the two processes trade the CPU once per frame rather
    /// than once per 64 KiB (the default pipe). Best effort: the kernel may refuse (the
    /// per-user pipe budget is spent) and the default pipe still works.
    pub(crate) fn grow_stdout_pipe(&self, bytes: usize) {
        if let Some(out) = &self.stdout {
            let _ = rustix::pipe::fcntl_setpipe_size(out, bytes.clamp(PIPE_MIN, PIPE_MAX));
        }
    }

    /// Kills the child now (it exceeded a limit or its output is no longer wanted).
    pub(crate) fn kill(&self) {
        let _ = lock(&self.child).kill();
    }

    /// Waits for the child to end (after its stdout is consumed or it was killed).
    pub(crate) fn finish(mut self) -> Result<Outcome, VideoError> {
        self.finish_inner()
    }

    fn finish_inner(&mut self) -> Result<Outcome, VideoError> {
        self.finished = true;
        // Close our end of stdout so a child still writing gets EPIPE instead of blocking.
        drop(self.stdout.take());
        let timed_out = match self.watchdog.take() {
            Some((tx, handle)) => {
                let _ = tx.send(());
                handle.join().unwrap_or(false)
            }
            None => false,
        };
        let status = lock(&self.child)
            .wait()
            .map_err(|e| VideoError::DecoderUnavailable {
                program: "decoder".into(),
                detail: format!("waiting for the decoder failed: {e}"),
            })?;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        Ok(Outcome {
            status,
            stderr,
            timed_out,
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.finished {
            self.kill();
            let _ = self.finish_inner();
        }
    }
}

fn lock(child: &Mutex<Child>) -> std::sync::MutexGuard<'_, Child> {
    child
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn spawn_error(program: &Path, e: std::io::Error) -> VideoError {
    VideoError::DecoderUnavailable {
        program: program.display().to_string(),
        detail: e.to_string(),
    }
}
