//! The guest memory ceiling a module runs under: the configured ceiling, lowered to the
//! module's own declared maximum when it has one.
//!
//! AssemblyScript guests (metashrew-spendables, metashrew-runes) declare a maximum of 32,768
//! pages (2 GiB); wasm cannot grow a memory past its declared maximum anyway, so such a module
//! runs under its maximum whatever the host allows. The effective ceiling is what the index's
//! identity records, and what the host reserves per instance.

use wasmparser::{Parser, Payload};

use crate::error::RuntimeError;

const PAGE: u64 = 65_536;

/// The limits of the memory a module defines, in pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeclaredMemory {
    /// The module's declared minimum, in 64 KiB pages.
    pub minimum_pages: u64,
    /// The module's declared maximum, in 64 KiB pages (`None`: undeclared).
    pub maximum_pages: Option<u64>,
}

/// The limits of the first memory `wasm` defines (`None` when it defines none: such a module
/// is refused later, since every indexer exports its `memory`).
pub fn declared_memory(wasm: &[u8]) -> Result<Option<DeclaredMemory>, RuntimeError> {
    let invalid = |e: wasmparser::BinaryReaderError| RuntimeError::InvalidModule(e.to_string());
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::MemorySection(reader) = payload.map_err(invalid)?
            && let Some(memory) = reader.into_iter().next()
        {
            let memory = memory.map_err(invalid)?;
            return Ok(Some(DeclaredMemory {
                minimum_pages: memory.initial,
                maximum_pages: memory.maximum,
            }));
        }
    }
    Ok(None)
}

/// The ceiling `wasm` runs under when the host allows `configured` bytes: the smaller of the
/// two. Refuses a module whose declared minimum is above it (it could never be instantiated).
pub fn memory_ceiling(wasm: &[u8], configured: u64) -> Result<u64, RuntimeError> {
    let Some(declared) = declared_memory(wasm)? else {
        return Ok(configured);
    };
    let ceiling = declared.maximum_pages.map_or(configured, |pages| {
        configured.min(pages.saturating_mul(PAGE))
    });
    let minimum = declared.minimum_pages.saturating_mul(PAGE);
    if minimum > ceiling {
        return Err(RuntimeError::InvalidModule(format!(
            "the module's memory starts at {} pages ({minimum} bytes), above the guest memory \
             ceiling of {ceiling} bytes (the host's --max-guest-memory-mib of {} MiB{})",
            declared.minimum_pages,
            configured >> 20,
            declared.maximum_pages.map_or(String::new(), |p| format!(
                ", the module's maximum of {p} pages"
            )),
        )));
    }
    Ok(ceiling)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(memory: &str) -> Vec<u8> {
        wat::parse_str(format!("(module {memory})")).unwrap()
    }

    #[test]
    fn declared_maximum_lowers_the_ceiling() {
        let assemblyscript = module("(memory (export \"memory\") 1 32768)");
        assert_eq!(memory_ceiling(&assemblyscript, 4 << 30).unwrap(), 2 << 30);
        assert_eq!(memory_ceiling(&assemblyscript, 1 << 30).unwrap(), 1 << 30);
        let unbounded = module("(memory (export \"memory\") 17)");
        assert_eq!(memory_ceiling(&unbounded, 4 << 30).unwrap(), 4 << 30);
        assert_eq!(memory_ceiling(&module(""), 4 << 30).unwrap(), 4 << 30);
        assert_eq!(
            declared_memory(&assemblyscript).unwrap(),
            Some(DeclaredMemory {
                minimum_pages: 1,
                maximum_pages: Some(32768)
            })
        );
    }

    #[test]
    fn minimum_above_the_ceiling_is_refused() {
        let big = module("(memory (export \"memory\") 20000)");
        let err = memory_ceiling(&big, 1 << 30).unwrap_err().to_string();
        assert!(
            err.contains("starts at 20000 pages") && err.contains("1024 MiB"),
            "{err}"
        );
        assert!(memory_ceiling(&big, 2 << 30).is_ok());
        assert!(memory_ceiling(b"\0asm\x01\0\0\0\x05\x03", 1 << 30).is_err());
    }
}
