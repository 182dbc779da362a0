//! The minimal WASI preview1 that Envoy (proxy-wasm-cpp-host) provides, under
//! `wasi_snapshot_preview1` and `wasi_unstable`: stdout/stderr become log
//! lines (info/error), clocks read the virtual clock, `random_get` is a
//! deterministic generator (reproducible tests), no files, no environment,
//! no arguments. WASI calls are allowed during module start, as in Envoy.

use crate::abi::LogLevel;
use crate::vm::{LogLine, VmData};
use wasmtime::{Caller, Extern, Linker};

type C<'a> = Caller<'a, VmData>;

const ESUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const EINVAL: i32 = 28;
const ENOENT: i32 = 44;
const ENOSYS: i32 = 52;
const ENOTSUP: i32 = 58;
/// proxy-wasm-cpp-host's PROXY_WASM_HOST_WASI_RANDOM_GET_MAX_SIZE_BYTES.
const RANDOM_MAX: u32 = 64 * 1024;

fn mem(c: &mut C<'_>) -> Option<wasmtime::Memory> {
    c.get_export("memory").and_then(Extern::into_memory)
}

fn read(c: &mut C<'_>, ptr: u32, len: u32) -> Option<Vec<u8>> {
    let m = mem(c)?;
    let start = ptr as usize;
    let end = start.checked_add(len as usize)?;
    m.data(&*c).get(start..end).map(|s| s.to_vec())
}

fn write(c: &mut C<'_>, ptr: u32, bytes: &[u8]) -> bool {
    let Some(m) = mem(c) else {
        return false;
    };
    let start = ptr as usize;
    let Some(end) = start.checked_add(bytes.len()) else {
        return false;
    };
    match m.data_mut(&mut *c).get_mut(start..end) {
        Some(d) => {
            d.copy_from_slice(bytes);
            true
        }
        None => false,
    }
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_le_bytes(s.try_into().ok()?))
}

fn log(c: &mut C<'_>, level: LogLevel, msg: String) {
    let d = c.data_mut();
    let ctx = d.target_context();
    let emitted = level >= d.cfg.log_level;
    let envoy_line = format!("{}: {msg}", d.log_prefix(ctx));
    d.logs.push(LogLine {
        level,
        message: msg,
        context_id: ctx,
        emitted,
        envoy_line,
    });
}

fn fd_write(mut c: C<'_>, fd: i32, iovs: i32, iovs_len: i32, nwritten: i32) -> i32 {
    let level = match fd {
        1 => LogLevel::Info,
        2 => LogLevel::Error,
        _ => return EBADF,
    };
    let mut out = Vec::new();
    for i in 0..iovs_len as u32 {
        let Some(iov) = read(&mut c, (iovs as u32).wrapping_add(i * 8), 8) else {
            return EFAULT;
        };
        let (Some(buf), Some(len)) = (le_u32(&iov, 0), le_u32(&iov, 4)) else {
            return EFAULT;
        };
        if len == 0 {
            continue;
        }
        let Some(data) = read(&mut c, buf, len) else {
            return EFAULT;
        };
        out.extend_from_slice(&data);
    }
    let written = out.len() as u32;
    if !out.is_empty() {
        if out.last() == Some(&b'\n') {
            out.pop();
        }
        log(&mut c, level, String::from_utf8_lossy(&out).into_owned());
    }
    if !write(&mut c, nwritten as u32, &written.to_le_bytes()) {
        return EFAULT;
    }
    ESUCCESS
}

fn clock_time_get(mut c: C<'_>, id: i32, _precision: i64, ptr: i32) -> i32 {
    let t = match id {
        0 => crate::property::now_nanos(c.data()),
        1 => {
            let h = c.data().host.borrow();
            h.monotonic.as_nanos() as u64
        }
        _ => return ENOTSUP,
    };
    if write(&mut c, ptr as u32, &t.to_le_bytes()) {
        ESUCCESS
    } else {
        EFAULT
    }
}

fn random_get(mut c: C<'_>, ptr: i32, len: i32) -> i32 {
    let len = len as u32;
    if len > RANDOM_MAX {
        return EINVAL;
    }
    if len == 0 {
        return ESUCCESS;
    }
    let mut bytes = Vec::with_capacity(len as usize);
    {
        let mut h = c.data().host.borrow_mut();
        while bytes.len() < len as usize {
            // xorshift64*: deterministic per host, good enough for tests.
            let mut x = h.random_state;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            h.random_state = x;
            bytes.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
    }
    bytes.truncate(len as usize);
    if write(&mut c, ptr as u32, &bytes) {
        ESUCCESS
    } else {
        EFAULT
    }
}

fn zero_pair(mut c: C<'_>, a: i32, b: i32) -> i32 {
    if write(&mut c, a as u32, &0u32.to_le_bytes()) && write(&mut c, b as u32, &0u32.to_le_bytes())
    {
        ESUCCESS
    } else {
        EFAULT
    }
}

fn fd_fdstat_get(mut c: C<'_>, fd: i32, stat: i32) -> i32 {
    if fd != 1 && fd != 2 {
        return EBADF;
    }
    let mut s = [0u8; 24];
    if let Some(slot) = s.get_mut(8..16) {
        slot.copy_from_slice(&64u64.to_le_bytes());
    }
    let _ = write(&mut c, stat as u32, &s);
    ESUCCESS
}

pub(crate) fn define(l: &mut Linker<VmData>) -> anyhow::Result<()> {
    for m in ["wasi_snapshot_preview1", "wasi_unstable"] {
        macro_rules! def {
            ($name:literal, $f:expr) => {
                l.func_wrap(m, $name, $f).map_err(anyhow::Error::from)?;
            };
        }
        def!("fd_write", fd_write);
        def!("fd_read", |_: C<'_>,
                         _: i32,
                         _: i32,
                         _: i32,
                         _: i32|
         -> i32 { ENOSYS });
        def!("fd_seek", |_: C<'_>,
                         _: i32,
                         _: i64,
                         _: i32,
                         _: i32|
         -> i32 { ESUCCESS });
        def!("fd_close", |_: C<'_>, _: i32| -> i32 { ESUCCESS });
        def!("fd_fdstat_get", fd_fdstat_get);
        def!("fd_prestat_get", |_: C<'_>, _: i32, _: i32| -> i32 {
            EBADF
        });
        def!("fd_prestat_dir_name", |_: C<'_>,
                                     _: i32,
                                     _: i32,
                                     _: i32|
         -> i32 { ENOSYS });
        def!("path_open", |_: C<'_>,
                           _: i32,
                           _: i32,
                           _: i32,
                           _: i32,
                           _: i32,
                           _: i64,
                           _: i64,
                           _: i32,
                           _: i32|
         -> i32 { ENOENT });
        def!("environ_get", |_: C<'_>, _: i32, _: i32| -> i32 {
            ESUCCESS
        });
        def!("environ_sizes_get", zero_pair);
        def!("args_get", |_: C<'_>, _: i32, _: i32| -> i32 { ESUCCESS });
        def!("args_sizes_get", zero_pair);
        def!("clock_time_get", clock_time_get);
        def!("random_get", random_get);
        def!("proc_exit", |mut c: C<'_>, code: i32| {
            log(&mut c, LogLevel::Error, format!("wasi proc_exit({code})"));
        });
    }
    l.func_wrap(
        "env",
        "emscripten_notify_memory_growth",
        |_: C<'_>, _: i32| {},
    )
    .map_err(anyhow::Error::from)?;
    l.func_wrap("env", "pthread_equal", |_: C<'_>, a: i32, b: i32| -> i32 {
        i32::from(a == b)
    })
    .map_err(anyhow::Error::from)?;
    Ok(())
}
