//! A verdict for every global a pickle names.
//!
//! Unpickling in Python imports and calls these; `reg` never does, but the
//! files it hands back will be loaded by Python, so it tells users what a
//! file would run. Three verdicts: [`Verdict::Safe`] (what
//! `torch.load(weights_only=True)` accepts, plain containers, Lightning,
//! OmegaConf, numpy scalars, paths), [`Verdict::Dangerous`] (anything that
//! reaches the OS, runs code, or resolves names at load time) and
//! [`Verdict::Unknown`] (the rest, e.g. a user's own `nn.Module` class).
//! Denylists alone are bypassed easily, so the default is "unknown", never
//! "safe", for a name not on the allowlist.

use serde::{Deserialize, Serialize};

/// How risky a pickled global is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Data-only constructors.
    Safe,
    /// Not known either way (a user's class).
    Unknown,
    /// Reaches the OS or executes code when loaded.
    Dangerous,
}

/// A global with its verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalVerdict {
    /// `module.name`.
    pub global: String,
    /// Its verdict.
    pub verdict: Verdict,
}

/// The globals of `globals` that are not known to be safe (dangerous or
/// unknown): what a push warns about, pull and show flag, and loading the
/// file in Python would import. The one definition of that filter.
pub fn not_safe(globals: &[GlobalVerdict]) -> impl Iterator<Item = &GlobalVerdict> {
    globals.iter().filter(|g| g.verdict != Verdict::Safe)
}

/// The names of the globals with verdict `v`.
pub fn with_verdict(globals: &[GlobalVerdict], v: Verdict) -> impl Iterator<Item = &str> {
    globals
        .iter()
        .filter(move |g| g.verdict == v)
        .map(|g| g.global.as_str())
}

/// Modules whose every attribute is dangerous.
const DANGEROUS_MODULES: &[&str] = &[
    "os",
    "posix",
    "nt",
    "subprocess",
    "sys",
    "socket",
    "shutil",
    "runpy",
    "importlib",
    "pickle",
    "_pickle",
    "cPickle",
    "marshal",
    "ctypes",
    "code",
    "codeop",
    "pty",
    "commands",
    "webbrowser",
    "multiprocessing",
    "asyncio",
    "threading",
    "_thread",
    "signal",
    "platform",
    "tempfile",
    "pathlib.Path.write_text",
    "ssl",
    "http",
    "urllib",
    "requests",
    "ftplib",
    "telnetlib",
    "smtplib",
    "imaplib",
    "poplib",
    "xmlrpc",
    "builtins.__import__",
    "pip",
    "setuptools",
    "distutils",
    "pdb",
    "bdb",
    "timeit",
    "cProfile",
    "profile",
    "trace",
    "inspect",
    "types",
    "functools.partial",
    "operator",
    "torch.hub",
    "torch.jit",
    "torch.ops",
    "torch.classes",
    "numpy.testing",
    "numpy.f2py",
    "numpy.distutils",
    "numpy.load",
    "joblib",
    "dill",
    "cloudpickle",
    "nbconvert",
    "IPython",
    "jinja2",
    "yaml",
    "_posixsubprocess",
    "_io",
    "io",
];

/// Builtins (module `builtins` / `__builtin__`) that run code or touch the OS.
const DANGEROUS_BUILTINS: &[&str] = &[
    "eval",
    "exec",
    "compile",
    "open",
    "getattr",
    "setattr",
    "delattr",
    "__import__",
    "globals",
    "locals",
    "vars",
    "input",
    "breakpoint",
    "memoryview",
    "help",
    "exit",
    "quit",
    "apply",
    "execfile",
    "file",
    "reload",
    "type",
    "object",
    "super",
    "classmethod",
    "staticmethod",
    "property",
];

/// Builtins that only build data.
const SAFE_BUILTINS: &[&str] = &[
    "set",
    "frozenset",
    "list",
    "tuple",
    "dict",
    "bytearray",
    "bytes",
    "complex",
    "float",
    "int",
    "bool",
    "str",
    "slice",
    "range",
    "object.__new__",
    "True",
    "False",
    "None",
    "Ellipsis",
];

/// Exact globals that are safe.
const SAFE_GLOBALS: &[&str] = &[
    "collections.OrderedDict",
    "collections.defaultdict",
    "collections.Counter",
    "collections.deque",
    "copyreg._reconstructor",
    "copy_reg._reconstructor",
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch._utils._rebuild_qtensor",
    "torch._utils._rebuild_sparse_tensor",
    "torch._utils._rebuild_nested_tensor",
    "torch._utils._rebuild_device_tensor_from_numpy",
    "torch._utils._rebuild_meta_tensor_no_storage",
    "torch._utils._rebuild_wrapper_subclass",
    "torch._tensor._rebuild_from_type_v2",
    "torch._tensor._rebuild_from_type",
    "torch.nn.parameter.Parameter",
    "torch.storage.UntypedStorage",
    "torch.storage.TypedStorage",
    "torch.Size",
    "torch.device",
    "torch.serialization._get_layout",
    "torch.per_tensor_affine",
    "torch.per_channel_affine",
    "torch.strided",
    "torch.sparse_coo",
    "argparse.Namespace",
    "datetime.datetime",
    "datetime.date",
    "datetime.time",
    "datetime.timedelta",
    "datetime.timezone",
    "decimal.Decimal",
    "fractions.Fraction",
    "uuid.UUID",
    "enum.Enum",
    "numpy.dtype",
    "numpy.ndarray",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
    "pathlib.PosixPath",
    "pathlib.WindowsPath",
    "pathlib.PurePosixPath",
    "pathlib.PureWindowsPath",
    "pathlib.Path",
    "pathlib._local.PosixPath",
    "pathlib._local.WindowsPath",
    "pathlib._local.Path",
    "_codecs.encode",
    "codecs.encode",
    // torch.distributed.checkpoint's `.metadata` dataclasses: plain fields.
    "torch.distributed.checkpoint.metadata.Metadata",
    "torch.distributed.checkpoint.metadata.TensorStorageMetadata",
    "torch.distributed.checkpoint.metadata.ChunkStorageMetadata",
    "torch.distributed.checkpoint.metadata.BytesStorageMetadata",
    "torch.distributed.checkpoint.metadata.TensorProperties",
    "torch.distributed.checkpoint.metadata.MetadataIndex",
    "torch.distributed.checkpoint.metadata.StorageMeta",
    "torch.distributed.checkpoint.metadata._MEM_FORMAT_ENCODING",
    "torch.distributed.checkpoint.filesystem._StorageInfo",
];

/// Module prefixes whose classes only hold data.
const SAFE_PREFIXES: &[&str] = &[
    "omegaconf.",
    "numpy.dtypes.",
    "lightning.fabric.utilities.data.AttributeDict",
    "pytorch_lightning.utilities.parsing.AttributeDict",
    "lightning.pytorch.utilities.parsing.AttributeDict",
    "lightning_fabric.utilities.data.AttributeDict",
    "torch.optim.lr_scheduler.",
];

/// The verdict for `module.name`.
pub fn verdict(module: &str, name: &str) -> Verdict {
    let full = format!("{module}.{name}");
    let top = module.split('.').next().unwrap_or(module);
    if module == "builtins" || module == "__builtin__" {
        return if DANGEROUS_BUILTINS.contains(&name) {
            Verdict::Dangerous
        } else if SAFE_BUILTINS.contains(&name) {
            Verdict::Safe
        } else {
            Verdict::Unknown
        };
    }
    if DANGEROUS_MODULES
        .iter()
        .any(|d| module == *d || top == *d || full == *d || module.starts_with(&format!("{d}.")))
    {
        return Verdict::Dangerous;
    }
    // Names that reach attribute lookup or code through any module.
    if matches!(
        name,
        "eval" | "exec" | "system" | "popen" | "__import__" | "getattr" | "import_module"
    ) || name.starts_with("__") && name != "__new__"
    {
        return Verdict::Dangerous;
    }
    if SAFE_GLOBALS.contains(&full.as_str()) || SAFE_PREFIXES.iter().any(|p| full.starts_with(p)) {
        return Verdict::Safe;
    }
    // torch dtypes (`torch.float32`) and storage classes (`torch.FloatStorage`).
    if module == "torch" && (crate::DType::from_torch_name(name).is_some() || name.ends_with("Storage")) {
        return Verdict::Safe;
    }
    Verdict::Unknown
}

/// Verdicts for a list of `(module, name)` globals.
pub fn judge<'a>(globals: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<GlobalVerdict> {
    globals
        .into_iter()
        .map(|(m, n)| GlobalVerdict {
            global: format!("{m}.{n}"),
            verdict: verdict(m, n),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(verdict("os", "system"), Verdict::Dangerous);
        assert_eq!(verdict("posix", "system"), Verdict::Dangerous);
        assert_eq!(verdict("builtins", "eval"), Verdict::Dangerous);
        assert_eq!(verdict("__builtin__", "getattr"), Verdict::Dangerous);
        assert_eq!(verdict("subprocess", "Popen"), Verdict::Dangerous);
        assert_eq!(verdict("torch._utils", "_rebuild_tensor_v2"), Verdict::Safe);
        assert_eq!(verdict("torch", "FloatStorage"), Verdict::Safe);
        assert_eq!(verdict("torch", "bfloat16"), Verdict::Safe);
        assert_eq!(verdict("collections", "OrderedDict"), Verdict::Safe);
        assert_eq!(verdict("omegaconf.dictconfig", "DictConfig"), Verdict::Safe);
        assert_eq!(verdict("mymodel", "Net"), Verdict::Unknown);
        assert_eq!(verdict("torch", "load"), Verdict::Unknown);
        assert_eq!(verdict("mymodel", "__reduce__"), Verdict::Dangerous);
    }
}
