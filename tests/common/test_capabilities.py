"""Capability ids and bit strings as go-livepeer has them (spec section 6)."""

from __future__ import annotations

import pytest

from baton_common.capabilities import (
    DEFAULT_CAPABILITIES,
    PIPELINES,
    bitstring,
    manifest_id,
    pipeline_by_capability,
    pipeline_by_name,
)


def test_pipelines_map_to_their_capability_ids_and_paths() -> None:
    assert [(p.name, p.capability) for p in PIPELINES][:3] == [
        ("text-to-image", 27),
        ("image-to-image", 28),
        ("image-to-video", 29),
    ]
    assert pipeline_by_name("llm").capability == 33 and pipeline_by_name("llm").path == "/llm"
    assert pipeline_by_capability(36).name == "text-to-speech"
    assert pipeline_by_capability(12) is None
    with pytest.raises(KeyError, match="unknown pipeline 'text2img'"):
        pipeline_by_name("text2img")
    assert len({p.capability for p in PIPELINES}) == len(PIPELINES)


def test_bitstrings_set_bit_c_mod_64_of_word_c_div_64() -> None:
    assert bitstring([0, 1, 63]) == [1 | 2 | 2**63]
    assert bitstring([64, 2]) == [4, 1]
    assert bitstring(DEFAULT_CAPABILITIES) == [sum(1 << c for c in (*range(13), 14, 26))]
    with pytest.raises(ValueError):
        bitstring([-1])


def test_batch_manifest_ids() -> None:
    assert manifest_id(27, "stabilityai/sd-turbo") == "27_stabilityai/sd-turbo"
