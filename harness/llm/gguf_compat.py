"""Workaround for slow GGUF loading in transformers 5.x (used by `loading._load` only).

Loading a GGUF checkpoint (the offline SmolLM2 alias) parses the file's metadata once for the
config, once for the tokenizer and once for the weights (`gguf.GGUFReader`, about 5 s each for
SmolLM2's 49,152-token vocabulary, element by element), and rebuilds gguf's tensor-name table
for every sub-module it maps (`gguf.get_tensor_name_map`, ~400 calls of ~20 ms). Inside
`reuse_gguf_parsing()` both are built once per file / per (architecture, block count) and shared;
the loaded tokenizer and weights are the same objects' contents as without it (tested).
Both patches are removed on exit.
"""

from __future__ import annotations

import contextlib
import functools
import os


@contextlib.contextmanager
def reuse_gguf_parsing():
    try:
        import gguf
    except ImportError:  # no GGUF support installed: nothing to speed up
        yield
        return
    reader_cls, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers: dict = {}

    def shared_reader(path, mode="r"):
        key = (os.path.realpath(os.fspath(path)), mode)
        if key not in readers:
            readers[key] = reader_cls(path, mode)
        return readers[key]

    gguf.GGUFReader = shared_reader
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader_cls, name_map
