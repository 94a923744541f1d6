//! `--plugin PATH`: batch-norm kernels written in C (or anything with a C
//! ABI), loaded in-process and registered for one run under their own name.
//!
//! The contract is `include/bnh_kernel.h` (ABI version 1) and
//! `docs/PLUGINS.md`. [`load`] validates everything the header promises
//! before the plugin is used (symbol, ABI version, function pointers, name,
//! description); each problem is an [`Error::Plugin`] naming the file and
//! the fix (exit 2). A loaded library is never unloaded, so its function
//! pointers stay valid for the whole process.
//!
//! - [`ffi`]: the `#[repr(C)]` mirror of the header;
//! - [`kernel`](mod@kernel): the [`Implementation`]/[`bn_impls::Kernel`] adapter.

pub mod ffi;
pub mod kernel;

use crate::error::{Error, Result};
use crate::fallible::Declines;
use bn_impls::{Implementation, Info};
use kernel::Plugin;
use std::ffi::{c_char, CStr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Longest accepted plugin name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// The plugins loaded in this process, in load order.
static LOADED: Mutex<Vec<&'static Declines<Plugin>>> = Mutex::new(Vec::new());

fn loaded_plugins() -> Vec<&'static Declines<Plugin>> {
    LOADED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Load every `--plugin` path, in order (a command line's first step, so a
/// bad plugin stops the run before any work).
pub fn load_all(paths: &[PathBuf]) -> Result<()> {
    for p in paths {
        load(p)?;
    }
    Ok(())
}

/// Every implementation of this run: the built-in registry, the peers
/// (`--features peers`), then the plugins.
pub fn all() -> Vec<&'static dyn Implementation> {
    let mut out = bn_impls::registry::all().to_vec();
    #[cfg(feature = "peers")]
    out.extend(crate::peers::all());
    out.extend(
        loaded_plugins()
            .into_iter()
            .map(|p| p as &'static dyn Implementation),
    );
    out
}

/// An implementation of this run by name, built-in or plugin; an unknown
/// name lists every available one.
pub fn by_name(name: &str) -> Result<&'static dyn Implementation> {
    all()
        .into_iter()
        .find(|i| i.info().name == name)
        .ok_or_else(|| {
            Error::Bn(bn_impls::Error::UnknownImplementation {
                name: name.to_string(),
                available: all().iter().map(|i| i.info().name.to_string()).collect(),
            })
        })
}

/// A plugin error on `path`.
fn bad(path: &Path, detail: impl Into<String>) -> Error {
    Error::Plugin {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// Load, validate and register the plugin at `path` for this process.
pub fn load(path: &Path) -> Result<&'static dyn Implementation> {
    let full = path.canonicalize().map_err(|e| {
        bad(
            path,
            format!(
                "cannot open it ({e}); build the plugin first (docs/PLUGINS.md) or fix the path"
            ),
        )
    })?;
    // SAFETY: loading a library runs its initializers; that is what
    // `--plugin` asks for (the user vouches for the file). The path is
    // absolute, so the system's library search path plays no part.
    let lib = unsafe { libloading::Library::new(&full) }.map_err(|e| {
        bad(
            path,
            format!("not a loadable shared library ({e}); build it with `cc -shared -fPIC` for this machine"),
        )
    })?;
    // Never unloaded: function pointers into it must stay valid for the
    // whole process (they are kept in `LOADED`, a static).
    let lib: &'static libloading::Library = Box::leak(Box::new(lib));
    // SAFETY: the symbol's type is the header's `bnh_kernel_entry_v1`
    // signature; a library exporting that name with another type breaks the
    // ABI contract the plugin author signed up to.
    let entry = unsafe { lib.get::<ffi::EntryFn>(ffi::ENTRY_SYMBOL) }.map_err(|_| {
        bad(
            path,
            "does not export `bnh_kernel_entry_v1`; define `const bnh_kernel_v1 *bnh_kernel_entry_v1(void)` (include/bnh_kernel.h) with default visibility",
        )
    })?;
    // SAFETY: a C function without arguments, valid while `lib` is loaded
    // (forever, see above).
    let table = unsafe { entry() };
    if table.is_null() {
        return Err(bad(
            path,
            "`bnh_kernel_entry_v1()` returned NULL; return the address of a static `bnh_kernel_v1`",
        ));
    }
    // SAFETY: non-NULL, and by the header's contract the address of a
    // `bnh_kernel_v1` that lives as long as the library (forever); `KernelV1`
    // mirrors its layout (tests pin it against the C compiler). Read by copy.
    let t: ffi::KernelV1 = unsafe { std::ptr::read(table) };
    let plugin = validate(path, &t)?;
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    let name = plugin.info.name;
    #[cfg(feature = "peers")]
    if crate::peers::names().contains(&name) {
        return Err(bad(
            path,
            format!("its name '{name}' is a peer implementation's (--features peers); give the plugin another name"),
        ));
    }
    if bn_impls::registry::names().iter().any(|n| n == name) {
        return Err(bad(
            path,
            format!(
                "its name '{name}' is a built-in implementation's; give the plugin another name"
            ),
        ));
    }
    if loaded.iter().any(|p| p.0.info.name == name) {
        return Err(bad(
            path,
            format!("its name '{name}' is already taken by another --plugin (or the same file given twice); give each plugin its own name"),
        ));
    }
    let plugin: &'static Declines<Plugin> = Box::leak(Box::new(Declines(plugin)));
    loaded.push(plugin);
    Ok(plugin)
}

/// Check the table's fields and copy what bnh keeps.
fn validate(path: &Path, t: &ffi::KernelV1) -> Result<Plugin> {
    if t.abi_version != ffi::ABI_VERSION {
        return Err(bad(
            path,
            format!(
                "abi_version is {}, this bnh loads version {} only; rebuild against this bnh's include/bnh_kernel.h and set abi_version = BNH_ABI_VERSION",
                t.abi_version,
                ffi::ABI_VERSION
            ),
        ));
    }
    let null_fn = |f: &str| {
        bad(
            path,
            format!("`{f}` is NULL; every function of bnh_kernel_v1 must be set (return nonzero for inputs it does not support)"),
        )
    };
    let forward_train = t.forward_train.ok_or_else(|| null_fn("forward_train"))?;
    let forward_eval = t.forward_eval.ok_or_else(|| null_fn("forward_eval"))?;
    let backward = t.backward.ok_or_else(|| null_fn("backward"))?;
    let name = read_name(path, t.name)?;
    let description = read_description(path, t.description)?;
    Ok(Plugin {
        info: Info {
            name: Box::leak(name.into_boxed_str()),
            description: Box::leak(description.into_boxed_str()),
            stable: t.stable != 0,
            deterministic: t.deterministic != 0,
        },
        forward_train,
        forward_eval,
        backward,
        calls: Mutex::new(()),
    })
}

/// The name: at most [`MAX_NAME_LEN`] bytes of `[a-z0-9_-]`, read without
/// looking past byte `MAX_NAME_LEN` (a missing NUL is an error, not an overrun).
fn read_name(path: &Path, p: *const c_char) -> Result<String> {
    const FIX: &str = "use 1 to 64 characters of [a-z0-9_-]";
    if p.is_null() {
        return Err(bad(path, format!("`name` is NULL; {FIX}")));
    }
    let mut bytes = Vec::new();
    loop {
        // SAFETY: `p` is non-NULL and by the header points to a
        // NUL-terminated string; the loop stops at its NUL or after
        // MAX_NAME_LEN + 1 bytes, whichever comes first, so it reads only
        // bytes of that string.
        let b = unsafe { *p.add(bytes.len()) } as u8;
        if b == 0 {
            break;
        }
        bytes.push(b);
        if bytes.len() > MAX_NAME_LEN {
            return Err(bad(
                path,
                format!("`name` is longer than {MAX_NAME_LEN} bytes; {FIX}"),
            ));
        }
    }
    let ok = !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-');
    if !ok {
        let shown = String::from_utf8_lossy(&bytes);
        return Err(bad(path, format!("`name` \"{shown}\" is not valid; {FIX}")));
    }
    Ok(String::from_utf8(bytes).expect("checked ASCII"))
}

/// The description: any UTF-8 text (shown by `bnh list`).
fn read_description(path: &Path, p: *const c_char) -> Result<String> {
    if p.is_null() {
        return Err(bad(
            path,
            "`description` is NULL; give a one-line description (\"\" is allowed)",
        ));
    }
    // SAFETY: non-NULL and, by the header, a NUL-terminated string that
    // lives as long as the library (forever).
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().map(str::to_string).map_err(|e| {
        bad(
            path,
            format!("`description` is not UTF-8 ({e}); save the source as UTF-8 or use ASCII"),
        )
    })
}

/// The [`Info`] of every loaded plugin (for messages and tests).
pub fn loaded_infos() -> Vec<Info> {
    loaded_plugins().iter().map(|p| p.0.info).collect()
}
