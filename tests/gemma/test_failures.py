"""Load failures become vlmkit errors that say what to do next."""

from __future__ import annotations

import pytest

import vlmkit
from vlmkit_gemma.failures import check_model_source, is_out_of_memory, load_error


class GatedRepoError(Exception):
    """Stands in for huggingface_hub's class (matched by name along the cause chain)."""


def _wrapped(cause: Exception, message: str) -> OSError:
    try:
        raise OSError(message) from cause
    except OSError as err:
        return err


def test_gated_model_asks_to_accept_the_licence():
    err = load_error(
        _wrapped(GatedRepoError("401"), "You are trying to access a gated repo."),
        "google/gemma-4-E2B-it",
    )
    assert isinstance(err, vlmkit.AuthError)
    assert "accept its licence at https://huggingface.co/google/gemma-4-E2B-it" in str(err)


def test_offline_and_not_cached_says_how_to_download():
    err = load_error(OSError("We couldn't connect to 'https://huggingface.co' ..."), "org/model")
    assert isinstance(err, vlmkit.ConfigError)
    assert "hf download org/model" in str(err) and "local folder" in str(err)


def test_other_failures():
    assert isinstance(
        load_error(
            OSError(
                "org/x is not a local folder and is not a valid model identifier listed on ..."
            ),
            "org/x",
        ),
        vlmkit.ConfigError,
    )
    oom = load_error(RuntimeError("CUDA out of memory. Tried to allocate 4 GiB"), "org/x")
    assert isinstance(oom, vlmkit.BackendError) and "out of memory" in str(oom)
    other = load_error(KeyError("boom"), "org/x")
    assert type(other) is vlmkit.BackendError and "KeyError" in str(other)
    same = vlmkit.ConfigError("already ours")
    assert load_error(same, "org/x") is same


def test_is_out_of_memory():
    assert is_out_of_memory(RuntimeError("MPS backend out of memory"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory"))
    assert not is_out_of_memory(ValueError("out of memory"))  # not an allocator error
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_check_model_source(tmp_path):
    assert check_model_source("google/gemma-4-E2B-it") == "google/gemma-4-E2B-it"
    (tmp_path / "config.json").write_text("{}")
    assert check_model_source(str(tmp_path)) == str(tmp_path)
    with pytest.raises(vlmkit.ConfigError, match="does not exist"):
        check_model_source("./no/such/folder")
    with pytest.raises(vlmkit.ConfigError, match="is a file"):
        check_model_source(str(tmp_path / "config.json"))
    with pytest.raises(vlmkit.ConfigError, match="Hub id"):
        check_model_source("")
