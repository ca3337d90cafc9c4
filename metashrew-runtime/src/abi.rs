//! The host functions of Metashrew's guest ABI (module `env`).
//!
//! Buffers use the ArrayBuffer layout: the guest passes the address of the data, the length is
//! a u32 LE at `ptr - 4`. Pointers are read as **u32**, so buffers anywhere in a 4 GiB memory
//! work (Metashrew read them as i32 and rejected everything above 2 GiB).
//!
//! Unlike Metashrew, every fault traps and so fails the call: a bad pointer, a buffer out of
//! bounds or too small for what the host must write, an undecodable flush (including an odd
//! number of items), `abort`, a storage error. A failed block commits nothing.

use wasmtime::{Caller, Extern, Linker, format_err};

use crate::context::{CallContext, CallKind};
use metashrew_storage::Storage;
use metashrew_support::proto::decode_flush;

type Ctx<'a, S> = Caller<'a, CallContext<S>>;

/// The guest's `memory`, looked up by name once per call context.
fn memory_of<S: Storage>(caller: &mut Ctx<'_, S>) -> wasmtime::Result<wasmtime::Memory> {
    if let Some(memory) = caller.data().memory {
        return Ok(memory);
    }
    match caller.get_export("memory") {
        Some(Extern::Memory(memory)) => {
            caller.data_mut().memory = Some(memory);
            Ok(memory)
        }
        _ => Err(format_err!("the guest exports no memory named `memory`")),
    }
}

/// The length header of the buffer whose data starts at `ptr`.
fn header_len(data: &[u8], ptr: i32) -> wasmtime::Result<(usize, usize)> {
    let start = ptr as u32 as usize;
    let header = start
        .checked_sub(4)
        .and_then(|h| data.get(h..start))
        .ok_or_else(|| format_err!("buffer pointer {start:#x} is out of bounds"))?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    Ok((start, len))
}

/// The ArrayBuffer at `ptr`, in place.
fn buffer(data: &[u8], ptr: i32) -> wasmtime::Result<&[u8]> {
    let (start, len) = header_len(data, ptr)?;
    start
        .checked_add(len)
        .and_then(|end| data.get(start..end))
        .ok_or_else(|| format_err!("buffer at {start:#x} of {len} bytes is out of bounds"))
}

/// Copies out the ArrayBuffer at `ptr`.
pub(crate) fn read_buffer(data: &[u8], ptr: i32) -> wasmtime::Result<Vec<u8>> {
    buffer(data, ptr).map(<[u8]>::to_vec)
}

fn read_arg<S: Storage>(caller: &mut Ctx<'_, S>, ptr: i32) -> wasmtime::Result<Vec<u8>> {
    let memory = memory_of(caller)?;
    read_buffer(memory.data(&caller), ptr)
}

/// Writes `bytes` into the guest buffer at `ptr`, whose header must announce room for them.
fn write_into_buffer<S: Storage>(
    caller: &mut Ctx<'_, S>,
    ptr: i32,
    bytes: &[u8],
    what: &str,
) -> wasmtime::Result<()> {
    let memory = memory_of(caller)?;
    let (start, capacity) = header_len(memory.data(&caller), ptr)?;
    if capacity < bytes.len() {
        return Err(format_err!(
            "{what}: the guest buffer at {start:#x} holds {capacity} bytes, {} needed",
            bytes.len()
        ));
    }
    memory.write(&mut *caller, start, bytes).map_err(|_| {
        format_err!(
            "{what}: writing {} bytes at {start:#x} is out of bounds",
            bytes.len()
        )
    })
}

fn len_as_i32(len: usize, what: &str) -> wasmtime::Result<i32> {
    i32::try_from(len).map_err(|_| format_err!("{what} of {len} bytes does not fit the ABI"))
}

/// Reads an AssemblyScript string (UTF-16LE, byte length at `ptr - 4`), for `abort` messages.
fn read_as_string(data: &[u8], ptr: i32) -> Option<String> {
    if ptr == 0 {
        return None;
    }
    let bytes = read_buffer(data, ptr).ok()?;
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    Some(String::from_utf16_lossy(&units))
}

/// The export a guest SDK may define to hear that its instance serves a view: called, when
/// present as `() -> ()`, before the view function (this project's SDK then reserves no
/// preallocated region in the view). Metashrew's hosts never call it.
pub const BEGIN_VIEW_EXPORT: &str = "__metashrew_begin_view";

/// The functions this host provides, all in module `env`.
pub(crate) const PROVIDED: [&str; 7] = [
    "__host_len",
    "__load_input",
    "__log",
    "__get_len",
    "__get",
    "__flush",
    "abort",
];

/// Whether the host provides the import `module::name`.
pub(crate) fn provides(module: &str, name: &str) -> bool {
    module == "env" && PROVIDED.contains(&name)
}

/// Traps when the call's context is sealed (an instance made ahead of its block, whose start
/// function must not reach the host), and interrupts a view or preview past its deadline or
/// cancelled, so that a guest looping over host calls stops as promptly as one looping in wasm.
fn unsealed<S: Storage>(caller: &Ctx<'_, S>, name: &str) -> wasmtime::Result<()> {
    let context = caller.data();
    if context.sealed {
        return Err(format_err!("{name} called before the block was given"));
    }
    if context
        .deadline
        .as_ref()
        .is_some_and(|d| d.stop().is_some())
    {
        return Err(wasmtime::Error::new(wasmtime::Trap::Interrupt));
    }
    Ok(())
}

/// Runs a host function's body, adding its duration to the call's host time.
fn timed<S: Storage, R>(
    caller: &mut Ctx<'_, S>,
    name: &str,
    body: impl FnOnce(&mut Ctx<'_, S>) -> wasmtime::Result<R>,
) -> wasmtime::Result<R> {
    unsealed(caller, name)?;
    let started = std::time::Instant::now();
    let result = body(caller);
    caller.data_mut().host_time += started.elapsed();
    result
}

/// Adds the `env` functions to `linker`.
pub(crate) fn define<S: Storage>(linker: &mut Linker<CallContext<S>>) -> wasmtime::Result<()> {
    linker.func_wrap("env", "__host_len", |caller: Ctx<'_, S>| {
        unsealed(&caller, "__host_len")?;
        len_as_i32(caller.data().input.len(), "the input")
    })?;

    linker.func_wrap("env", "__load_input", |mut caller: Ctx<'_, S>, ptr: i32| {
        timed(&mut caller, "__load_input", |caller| {
            let input = std::mem::take(&mut caller.data_mut().input);
            let result = write_into_buffer(caller, ptr, &input, "__load_input");
            caller.data_mut().input = input;
            result
        })
    })?;

    linker.func_wrap("env", "__log", |mut caller: Ctx<'_, S>, ptr: i32| {
        unsealed(&caller, "__log")?;
        let bytes = read_arg(&mut caller, ptr)?;
        let text = String::from_utf8_lossy(&bytes);
        log::info!(target: caller.data().log_target, "{}", text.trim_end_matches('\n'));
        caller.data_mut().remember_log(&text);
        Ok(())
    })?;

    linker.func_wrap("env", "__get_len", |mut caller: Ctx<'_, S>, key: i32| {
        timed(&mut caller, "__get_len", |caller| {
            let key = read_arg(caller, key)?;
            let value = caller.data_mut().read(key)?;
            len_as_i32(value.len(), "a value")
        })
    })?;

    linker.func_wrap(
        "env",
        "__get",
        |mut caller: Ctx<'_, S>, key: i32, value_ptr: i32| {
            timed(&mut caller, "__get", |caller| {
                let key = read_arg(caller, key)?;
                let value = caller.data_mut().read(key)?.to_vec();
                write_into_buffer(caller, value_ptr, &value, "__get")
            })
        },
    )?;

    linker.func_wrap("env", "__flush", |mut caller: Ctx<'_, S>, ptr: i32| {
        timed(&mut caller, "__flush", |caller| {
            let memory = memory_of(caller)?;
            // Decoded straight from guest memory: a block's flush can be megabytes.
            let pairs = decode_flush(buffer(memory.data(&*caller), ptr)?)
                .map_err(|e| format_err!("__flush: {e}"))?;
            let ctx = caller.data_mut();
            if ctx.kind == CallKind::Block {
                ctx.flushed.get_or_insert_with(Vec::new).extend(pairs);
            }
            Ok(())
        })
    })?;

    linker.func_wrap(
        "env",
        "abort",
        |mut caller: Ctx<'_, S>,
         msg: i32,
         file: i32,
         line: i32,
         column: i32|
         -> wasmtime::Result<()> {
            let memory = memory_of(&mut caller)?;
            let data = memory.data(&caller);
            let message = read_as_string(data, msg).unwrap_or_else(|| "(no message)".into());
            let file = read_as_string(data, file).unwrap_or_else(|| "?".into());
            Err(format_err!(
                "guest called abort: {message} at {file}:{line}:{column}"
            ))
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bounds::Limits;
    use crate::context::StateView;
    use metashrew_storage::MemStore;

    /// [`PROVIDED`] is exactly what [`define`] links: one list, checked against the other.
    #[test]
    fn the_provided_list_is_what_define_links() {
        let engine = wasmtime::Engine::default();
        let mut linker = Linker::<CallContext<MemStore>>::new(&engine);
        define(&mut linker).unwrap();
        let context = CallContext::new(
            Limits::new(1 << 16),
            CallKind::View,
            0,
            &[],
            StateView::Empty,
        );
        let mut store = wasmtime::Store::new(&engine, context);
        let mut linked: Vec<String> = linker
            .iter(&mut store)
            .map(|(module, name, _)| format!("{module}::{name}"))
            .collect();
        linked.sort();
        let mut provided: Vec<String> = PROVIDED.iter().map(|n| format!("env::{n}")).collect();
        provided.sort();
        assert_eq!(linked, provided);
    }
}
