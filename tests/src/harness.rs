//! A small wasmtime host implementing Metashrew's guest ABI over an in-memory map, enough to run
//! the example guests block by block in tests until `metashrew-runtime` exists.
//!
//! Reads during block h see the state after h-1 (flushed pairs are applied once `_start`
//! returns); a block that traps or returns without flushing changes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use metashrew_support::proto::decode_flush;
use wasmtime::format_err;
use wasmtime::{Caller, Engine, Instance, Linker, Memory, Module, Store};

/// The key/value state every instance of a [`GuestHost`] reads.
pub type State = BTreeMap<Vec<u8>, Vec<u8>>;

/// What an instance's host functions see.
pub struct HostState {
    input: Vec<u8>,
    state: Arc<State>,
    flushed: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    /// Text the guest logged through `__log`.
    pub log: String,
}

/// A compiled guest plus the state it indexes.
pub struct GuestHost {
    engine: Engine,
    module: Module,
    linker: Linker<HostState>,
    state: Arc<State>,
    persistent: Option<(Store<HostState>, Instance)>,
}

fn memory(caller: &mut Caller<'_, HostState>) -> wasmtime::Result<Memory> {
    caller
        .get_export("memory")
        .and_then(|e| e.into_memory())
        .ok_or_else(|| format_err!("guest exports no memory"))
}

/// Reads the ArrayBuffer whose data pointer is `ptr` (length at `ptr - 4`). Pointers are read as
/// u32, so buffers above 2 GiB work.
fn read_buffer(caller: &mut Caller<'_, HostState>, ptr: i32) -> wasmtime::Result<Vec<u8>> {
    let mem = memory(caller)?;
    let data = mem.data(&caller);
    let start = ptr as u32 as usize;
    let header = start
        .checked_sub(4)
        .and_then(|h| data.get(h..start))
        .ok_or_else(|| format_err!("buffer pointer {start:#x} is out of bounds"))?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    data.get(start..start + len)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| format_err!("buffer at {start:#x} of {len} bytes is out of bounds"))
}

fn write_bytes(caller: &mut Caller<'_, HostState>, ptr: i32, bytes: &[u8]) -> wasmtime::Result<()> {
    let mem = memory(caller)?;
    mem.write(&mut *caller, ptr as u32 as usize, bytes)
        .map_err(|_| {
            format_err!(
                "writing {} bytes at {:#x} is out of bounds",
                bytes.len(),
                ptr as u32
            )
        })
}

fn define_imports(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap("env", "__host_len", |caller: Caller<'_, HostState>| {
        caller.data().input.len() as i32
    })?;
    linker.func_wrap(
        "env",
        "__load_input",
        |mut caller: Caller<'_, HostState>, ptr: i32| -> wasmtime::Result<()> {
            let input = caller.data().input.clone();
            write_bytes(&mut caller, ptr, &input)
        },
    )?;
    linker.func_wrap(
        "env",
        "__log",
        |mut caller: Caller<'_, HostState>, ptr: i32| -> wasmtime::Result<()> {
            let text = read_buffer(&mut caller, ptr)?;
            caller
                .data_mut()
                .log
                .push_str(&String::from_utf8_lossy(&text));
            Ok(())
        },
    )?;
    linker.func_wrap(
        "env",
        "__get_len",
        |mut caller: Caller<'_, HostState>, key: i32| -> wasmtime::Result<i32> {
            let key = read_buffer(&mut caller, key)?;
            Ok(caller.data().state.get(&key).map_or(0, Vec::len) as i32)
        },
    )?;
    linker.func_wrap(
        "env",
        "__get",
        |mut caller: Caller<'_, HostState>, key: i32, value: i32| -> wasmtime::Result<()> {
            let key = read_buffer(&mut caller, key)?;
            let bytes = caller.data().state.get(&key).cloned().unwrap_or_default();
            write_bytes(&mut caller, value, &bytes)
        },
    )?;
    linker.func_wrap(
        "env",
        "__flush",
        |mut caller: Caller<'_, HostState>, ptr: i32| -> wasmtime::Result<()> {
            let bytes = read_buffer(&mut caller, ptr)?;
            let pairs = decode_flush(&bytes).map_err(wasmtime::Error::new)?;
            caller.data_mut().flushed = Some(pairs);
            Ok(())
        },
    )?;
    Ok(())
}

impl GuestHost {
    /// Compiles the guest at `wasm_path`.
    pub fn load(wasm_path: &str) -> Result<Self> {
        let engine = Engine::default();
        let module = Module::from_file(&engine, wasm_path)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("compiling {wasm_path}"))?;
        let mut linker = Linker::new(&engine);
        define_imports(&mut linker)?;
        Ok(Self {
            engine,
            module,
            linker,
            state: Arc::new(State::new()),
            persistent: None,
        })
    }

    fn new_store(&self, input: Vec<u8>) -> Store<HostState> {
        Store::new(
            &self.engine,
            HostState {
                input,
                state: self.state.clone(),
                flushed: None,
                log: String::new(),
            },
        )
    }

    fn framed(height: u32, payload: &[u8]) -> Vec<u8> {
        let mut input = height.to_le_bytes().to_vec();
        input.extend_from_slice(payload);
        input
    }

    /// Runs `_start` on `block` at `height`, in a fresh instance or in the instance kept from the
    /// previous block (`persistent`), and applies its flush.
    pub fn run_block(&mut self, height: u32, block: &[u8], persistent: bool) -> Result<()> {
        let input = Self::framed(height, block);
        let (mut store, instance) = match (persistent, self.persistent.take()) {
            (true, Some((mut store, instance))) => {
                let data = store.data_mut();
                data.input = input;
                data.state = self.state.clone();
                data.flushed = None;
                (store, instance)
            }
            _ => {
                let mut store = self.new_store(input);
                let instance = self.linker.instantiate(&mut store, &self.module)?;
                (store, instance)
            }
        };
        let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
        start
            .call(&mut store, ())
            .map_err(anyhow::Error::from)
            .with_context(|| format!("block {height} failed; guest log: {}", store.data().log))?;
        let Some(pairs) = store.data_mut().flushed.take() else {
            bail!("block {height}: _start returned without calling __flush");
        };
        // Release the instance's reference first, so the state is updated in place.
        store.data_mut().state = Arc::new(State::new());
        if persistent {
            self.persistent = Some((store, instance));
        } else {
            drop(store);
        }
        let state = Arc::make_mut(&mut self.state);
        for (k, v) in pairs {
            state.insert(k, v);
        }
        Ok(())
    }

    /// Calls the view `name` with `request` in a fresh instance, at the current state.
    pub fn view(&self, name: &str, height: u32, request: &[u8]) -> Result<Vec<u8>> {
        let mut store = self.new_store(Self::framed(height, request));
        let instance = self.linker.instantiate(&mut store, &self.module)?;
        let view = instance.get_typed_func::<(), i32>(&mut store, name)?;
        let ptr = view.call(&mut store, ())?;
        let mem = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| anyhow!("guest exports no memory"))?;
        let data = mem.data(&store);
        let start = ptr as u32 as usize;
        let header = data
            .get(start.saturating_sub(4)..start)
            .ok_or_else(|| anyhow!("view returned a bad pointer"))?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        data.get(start..start + len)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| anyhow!("view result out of bounds"))
    }

    /// The state after the last block.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Replaces the state (e.g. to replay a block against a copy).
    pub fn set_state(&mut self, state: State) {
        self.state = Arc::new(state);
        self.persistent = None;
    }
}
