"""Code objects: the msgpack reader on every encoding it supports, finding ld.lld, linking
without one, and the code object version knob (v5 links with a newer ld.lld)."""
from __future__ import annotations

import shutil
import struct

import pytest
from amd_util import CORPUS, compile_checked

from tilec.backends.amd import compile_kernel, hsaco
from tilec.errors import TilecError
from tilec.ir.parser import parse_file


@pytest.mark.parametrize("data,value", [
    (b"\x05", 5), (b"\xff", -1), (b"\xcc\xc8", 200), (b"\xcd\x01\x00", 256),
    (b"\xce\x00\x01\x00\x00", 65536), (b"\xcf" + (1 << 40).to_bytes(8, "big"), 1 << 40),
    (b"\xd0\x80", -128), (b"\xd1\xff\x00", -256), (b"\xd2\xff\xff\xff\xfe", -2),
    (b"\xd3" + (-(1 << 40)).to_bytes(8, "big", signed=True), -(1 << 40)),
    (b"\xc0", None), (b"\xc2", False), (b"\xc3", True),
    (b"\xca" + struct.pack(">f", 1.5), 1.5), (b"\xcb" + struct.pack(">d", 0.1), 0.1),
    (b"\xa3abc", "abc"), (b"\xd9\x03xyz", "xyz"), (b"\xda\x00\x01z", "z"),
    (b"\xc4\x02\x01\x02", b"\x01\x02"), (b"\x92\x01\xa1a", [1, "a"]),
    (b"\xdc\x00\x02\xc3\xc2", [True, False]), (b"\x81\xa1k\x90", {"k": []}),
    (b"\xde\x00\x01\x01\x82\xa1x\x01\xa1y\xc0", {1: {"x": 1, "y": None}}),
])
def test_msgpack_reader(data, value):
    got, end = hsaco._unpack(data, 0)
    assert got == value and end == len(data)


def test_msgpack_reader_rejects_what_it_does_not_know():
    with pytest.raises(TilecError, match="unsupported msgpack tag 0xd4"):
        hsaco._unpack(b"\xd4\x00\x00", 0)


def test_metadata_document_of_a_real_code_object():
    k = compile_checked(parse_file(CORPUS / "softmax.tile"), "softmax", "gfx942")
    doc = hsaco.metadata_document(k.hsaco)
    assert doc["amdhsa.version"][0] == 1 and doc["amdhsa.target"].startswith(
        "amdgcn-amd-amdhsa--gfx942")
    (kernel,) = doc["amdhsa.kernels"]
    assert kernel[".name"] == "softmax" and kernel[".symbol"] == "softmax.kd"


def test_without_ld_lld_there_is_no_code_object(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("TILEC_LLD", raising=False)
    monkeypatch.setattr(hsaco, "ROCM_LLD", "/nonexistent/ld.lld")
    assert hsaco.lld_path() is None
    k = compile_kernel(parse_file(CORPUS / "vector_add.tile"), "vector_add_ptr", "gfx90a")
    assert k.hsaco is None and k.obj[:4] == b"\x7fELF" and "v_" in k.amdgcn
    with pytest.raises(TilecError, match="was not linked: no ld.lld") as e:
        k.metadata()
    assert "apt-get install lld" in e.value.hint
    with pytest.raises(TilecError, match="no ld.lld found"):
        hsaco.link(k.obj, "vector_add_ptr")


def test_a_tilec_lld_that_does_not_run(monkeypatch):
    monkeypatch.setenv("TILEC_LLD", "/nonexistent/ld.lld")
    with pytest.raises(TilecError, match="cannot run ld.lld /nonexistent/ld.lld"):
        compile_kernel(parse_file(CORPUS / "vector_add.tile"), "vector_add_ptr", "gfx90a")


def test_code_object_v5_links_with_a_newer_lld(monkeypatch):
    newer = shutil.which("ld.lld-19")
    assert newer, ".ci/run installs lld-19 (Debian 12) next to lld"
    monkeypatch.setenv("TILEC_LLD", newer)
    monkeypatch.setenv("TILEC_AMD_CODE_OBJECT", "5")
    k = compile_checked(parse_file(CORPUS / "grid_stride.tile"), "fill3d", "gfx942")
    assert ".amdhsa_code_object_version 5" in k.amdgcn
    assert hsaco.metadata_document(k.hsaco)["amdhsa.version"] == [1, 2]   # v5


def test_v4_is_the_default_and_other_versions_are_refused(monkeypatch):
    monkeypatch.delenv("TILEC_AMD_CODE_OBJECT", raising=False)
    k = compile_checked(parse_file(CORPUS / "grid_stride.tile"), "fill3d", "gfx942")
    assert hsaco.metadata_document(k.hsaco)["amdhsa.version"] == [1, 1]   # v4
    monkeypatch.setenv("TILEC_AMD_CODE_OBJECT", "6")
    with pytest.raises(TilecError, match="TILEC_AMD_CODE_OBJECT=6 is not a code object "
                                         "version tilec emits"):
        compile_kernel(parse_file(CORPUS / "grid_stride.tile"), "fill3d", "gfx942")
