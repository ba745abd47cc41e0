"""The GGUF loading workaround (`harness.llm.gguf_compat`) loads the same tokenizer and weights
as transformers' own loader, and leaves gguf unpatched afterwards."""

import gguf
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from harness.llm.gguf_compat import reuse_gguf_parsing
from harness.llm.loading import _kwargs, load_causal_lm, resolve_model


def test_reused_gguf_parsing_loads_the_same_model():
    ref = resolve_model("smollm2-135m")
    assert ref.gguf_file
    reader_cls, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    tok, lm = load_causal_lm("smollm2-135m", "cpu", "float32", quiet=True)  # patched inside
    assert (gguf.GGUFReader, gguf.get_tensor_name_map) == (reader_cls, name_map)  # restored
    plain_tok = AutoTokenizer.from_pretrained(ref.path, **_kwargs(ref, False))
    plain = AutoModelForCausalLM.from_pretrained(ref.path, dtype=torch.float32,
                                                 **_kwargs(ref, False))
    assert tok.get_vocab() == plain_tok.get_vocab()
    text = "Star Wars (1977), genres: Action Adventure Romance Sci-Fi War<|im_end|>"
    assert tok(text)["input_ids"] == plain_tok(text)["input_ids"]
    a, b = lm.state_dict(), plain.state_dict()
    assert a.keys() == b.keys() and len(a) > 100
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_readers_are_shared_within_the_block_only():
    path = resolve_model("smollm2-135m")
    file = f"{path.path}/{path.gguf_file}"
    with reuse_gguf_parsing():
        first = gguf.GGUFReader(file)
        assert gguf.GGUFReader(file) is first
        assert gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2) is \
            gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2)
    assert isinstance(first, gguf.GGUFReader)
