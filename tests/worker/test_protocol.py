"""The wire format: JSON lines plus safetensors, size limits, and refusal of anything that could execute."""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import struct

import pytest
import torch

from autograder.worker.protocol import (
    MAX_DIMENSION,
    MAX_REPORTED_NAMES,
    Observation,
    ProtocolError,
    TensorSpec,
    check_safetensors,
    decode_message,
    decode_tensors,
    encode_message,
    encode_tensors,
    load_report,
    observation_from_response,
    truncate,
)
from autograder.worker.server import CAPTURE_CHARS, Server, _PrintedOutput


def test_message_round_trip_keeps_values_and_is_one_line():
    message = {"id": 3, "ok": True, "data": {"shape": [2, 24, 4, 4], "text": "a\nb", "loss": float("nan")}}
    line = encode_message(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    back = decode_message(line)
    assert back["data"]["shape"] == [2, 24, 4, 4] and back["data"]["text"] == "a\nb"
    assert back["data"]["loss"] != back["data"]["loss"]  # NaN survives: a diverging loss is an observation


def test_tensors_round_trip_bit_exactly_across_dtypes():
    generator = torch.Generator().manual_seed(0)
    tensors = {
        "f32": torch.randn(3, 4, generator=generator),
        "bf16": torch.randn(5, generator=generator).to(torch.bfloat16),
        "i64": torch.arange(7),
        "mask": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 3),
        "view": torch.randn(4, 4, generator=generator).t(),  # non-contiguous
    }
    back = decode_tensors(encode_tensors(tensors))
    assert back.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert back[name].dtype == tensor.dtype and torch.equal(back[name], tensor), name


def test_observation_from_a_full_response():
    response = {
        "id": 1,
        "ok": True,
        "data": {"parameters": 42156},
        "tensors": encode_tensors({"w": torch.ones(2, 2)}),
        "stdout": "hello",
        "seconds": 0.5,
    }
    observation = observation_from_response(decode_message(encode_message(response)))
    assert observation.ok and observation.data == {"parameters": 42156} and observation.stdout == "hello"
    assert torch.equal(observation.tensors["w"], torch.ones(2, 2))
    failed = observation_from_response({"ok": False, "error": "boom", "traceback": "line 3"})
    assert not failed.ok and failed.message == "boom\nline 3"
    assert observation_from_response({"ok": False}).error == "the call failed without saying why"


class _Exploit:
    """Unpickling this would create a file: the refusal tests check that it never exists."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_payloads_are_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    payloads = {
        "pickle": pickle.dumps(_Exploit(str(marker))),
        "pickle of a tensor": pickle.dumps(torch.ones(3)),
    }
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(3)}, buffer)
    payloads["torch.save"] = buffer.getvalue()
    for what, blob in payloads.items():
        with pytest.raises(ProtocolError, match="pickle / torch.save"):
            decode_tensors(base64.b64encode(blob).decode())
        response = {"ok": True, "data": {}, "tensors": base64.b64encode(blob).decode()}
        with pytest.raises(ProtocolError):
            observation_from_response(response)
        assert not marker.exists(), what


def _safetensors_with_header(header: dict, data: bytes = b"\0" * 16) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"\x01\x02", "too short"),
        (struct.pack("<Q", 10**9) + b"{}", "header length"),
        (struct.pack("<Q", 4) + b"nope", "not JSON"),
        (_safetensors_with_header({"x": {"dtype": "OBJECT", "shape": [1], "data_offsets": [0, 8]}}), "unsupported"),
        (_safetensors_with_header({"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}), "invalid shape"),
        (_safetensors_with_header({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 999]}}), "outside"),
        (_safetensors_with_header({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 0]}}), "no data"),
    ],
)
def test_malformed_safetensors_is_refused_with_a_reason(blob, message):
    with pytest.raises(ProtocolError, match=message):
        check_safetensors(blob)


def test_a_header_that_lies_about_its_size_is_refused_by_the_library():
    blob = _safetensors_with_header({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}})
    with pytest.raises(ProtocolError, match="could not be decoded"):
        decode_tensors(base64.b64encode(blob).decode())


def test_oversized_and_malformed_messages_are_refused():
    with pytest.raises(ProtocolError, match="exceeds the limit of 100 bytes"):
        decode_message(b'{"x": "' + b"a" * 200 + b'"}\n', max_bytes=100)
    with pytest.raises(ProtocolError, match="tensor payload exceeds"):
        decode_tensors(encode_tensors({"w": torch.zeros(1000)}), max_bytes=1000)
    with pytest.raises(ProtocolError, match="not valid JSON"):
        decode_message(b"Traceback (most recent call last):\n")
    with pytest.raises(ProtocolError, match="JSON object"):
        decode_message(b"[1, 2]\n")
    with pytest.raises(ProtocolError, match="base64"):
        decode_tensors("not base64 at all!")
    with pytest.raises(ProtocolError, match="'data' must be an object"):
        observation_from_response({"ok": True, "data": [1]})
    with pytest.raises(ProtocolError, match="boolean 'ok'"):
        observation_from_response({"data": {}})


def test_truncate_keeps_the_start_and_the_end():
    text = "start " + "x" * 10_000 + " the last line"
    short = truncate(text, 100)
    assert short.startswith("start ") and short.endswith("the last line") and "truncated" in short
    assert len(short) < 200 and truncate("short", 100) == "short"


def _serve(lines: list[dict], max_bytes: int = 1 << 20) -> list[dict]:
    requests = io.BytesIO(b"".join(encode_message(line) for line in lines))
    responses = io.BytesIO()
    Server(requests, responses, _PrintedOutput(), max_bytes).serve()
    return [json.loads(line) for line in responses.getvalue().splitlines()]


def test_server_answers_each_request_by_id_and_refuses_misuse():
    answers = _serve(
        [
            {"id": 1, "op": "ping"},
            {"id": 2, "op": "call", "probe": "encoder_structure", "args": {}},
            {"id": 3, "op": "call", "probe": "no_such_probe"},
            {"id": 4, "op": "dance"},
        ]
    )
    assert [answer["id"] for answer in answers] == [1, 2, 3, 4]
    assert answers[0]["ok"] is True
    assert "before load" in answers[1]["error"]
    assert "unknown probe 'no_such_probe'" in answers[2]["error"]
    assert "unknown op 'dance'" in answers[3]["error"]


def test_server_replaces_an_oversized_response_with_an_error():
    server = Server(io.BytesIO(), io.BytesIO(), _PrintedOutput(), max_bytes=200)
    server.send({"id": 9, "ok": True, "data": {"big": "x" * 1000}})
    answer = json.loads(server.responses.getvalue())
    assert answer["id"] == 9 and answer["ok"] is False and "too large" in answer["error"]
    assert len(server.responses.getvalue()) <= 200


def test_capture_keeps_a_bounded_amount_of_output():
    capture = _PrintedOutput()
    capture.write("a" * (CAPTURE_CHARS + 500))
    text = capture.take()
    assert text.startswith("a" * 100) and text.endswith("[... 500 more characters not kept]")
    assert capture.take() == ""


def test_failure_helper_builds_a_failed_observation():
    observation = Observation.failure("it broke", stdout="printed")
    assert not observation.ok and observation.message == "it broke" and observation.stdout == "printed"


def test_a_safetensors_header_whose_length_starts_like_pickle_still_decodes():
    """A header of 128 + 256n bytes makes the first byte 0x80, as in pickle protocol 2; it is still safetensors."""
    for size in range(1, 400):
        tensors = {"x" * size: torch.zeros(1)}
        blob = base64.b64decode(encode_tensors(tensors))
        if blob[0] == 0x80:
            assert torch.equal(decode_tensors(encode_tensors(tensors))["x" * size], torch.zeros(1))
            return
    raise AssertionError("no name length gave a header of 128 + 256n bytes")


FEATURES = {"train": TensorSpec((6, None)), "test": TensorSpec((4, None))}


def test_an_empty_tensor_that_would_make_the_grader_allocate_its_width_is_refused():
    """`torch.empty(0, 10**8)` carries no data, so size limits pass it; a probe built from its width would
    take gigabytes. It is refused from the header, with or without an expectation."""
    payload = encode_tensors({"train": torch.empty(0, 10**8), "test": torch.empty(0, 10**8)})
    with pytest.raises(ProtocolError, match=r"shape \[0, 100000000\]: without its empty dimensions"):
        decode_tensors(payload)
    narrow = encode_tensors({"train": torch.empty(0, 8), "test": torch.empty(0, 8)})
    with pytest.raises(ProtocolError, match=r"'test' has shape \[0, 8\], expected \[4, N\]"):
        decode_tensors(narrow, expect={"test": FEATURES["test"]})


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        ({"train": torch.zeros(6, 3), "test": torch.zeros(4, 0)}, r"'test' has shape \[4, 0\], expected \[4, N\]"),
        ({"train": torch.zeros(5, 3), "test": torch.zeros(4, 3)}, r"'train' has shape \[5, 3\], expected \[6, N\]"),
        ({"train": torch.zeros(6, 3, 1), "test": torch.zeros(4, 3)}, r"'train' has shape \[6, 3, 1\]"),
        ({"train": torch.zeros(6, MAX_DIMENSION + 1, dtype=torch.uint8), "test": torch.zeros(4, 3)}, "dtype U8"),
        ({"train": torch.zeros(6, MAX_DIMENSION + 1, dtype=torch.float16), "test": torch.zeros(4, 3)}, "N from 1"),
        ({"train": torch.zeros(6, 3, dtype=torch.int64), "test": torch.zeros(4, 3)}, "dtype I64, expected one of"),
        ({"train": torch.zeros(6, 3)}, "lacks the expected tensors 'test'"),
    ],
)
def test_tensors_are_checked_against_what_the_test_expects_before_decoding(tensors, message):
    response = {"ok": True, "tensors": encode_tensors(tensors)}
    with pytest.raises(ProtocolError, match=message):
        observation_from_response(response, expect=FEATURES)


def test_tensors_as_expected_decode_and_a_failed_call_needs_none():
    tensors = {"train": torch.randn(6, 3), "test": torch.randn(4, 3, dtype=torch.float64), "extra": torch.ones(2)}
    observation = observation_from_response({"ok": True, "tensors": encode_tensors(tensors)}, expect=FEATURES)
    assert all(torch.equal(observation.tensors[name], tensor) for name, tensor in tensors.items())
    with pytest.raises(ProtocolError, match="lacks the expected tensors 'test', 'train'"):
        observation_from_response({"ok": True, "data": {}}, expect=FEATURES)
    failed = observation_from_response({"ok": False, "error": "boom"}, expect=FEATURES)
    assert not failed.ok and failed.error == "boom"


def test_a_well_formed_load_report_is_read_with_its_texts_bounded():
    report = load_report(
        {
            "loaded": ["Encoder", "train_ae"],
            "errors": {"Decoder": "x" * 10_000},
            "import_errors": [["cell 1", "import a", "no"]],
        }
    )
    assert report.loaded == ["Encoder", "train_ae"] and report.import_errors == [["cell 1", "import a", "no"]]
    assert len(report.errors["Decoder"]) < 4200


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"loaded": "Encoder"}, "'loaded' must be a JSON list, got str"),
        ({"loaded": [1]}, "'loaded' must hold names"),
        ({"loaded": ["x" * 201]}, "'loaded' must hold names of 1 to 200"),
        ({"loaded": ["a"] * (MAX_REPORTED_NAMES + 1)}, "more than"),
        ({"errors": ["Encoder"]}, "'errors' must be a JSON dict, got list"),
        ({"errors": {"Encoder": {"nested": 1}}}, "'errors' must map names to text"),
        ({"import_errors": [["cell 1", "import a"]]}, r"\[where, statement, error\]"),
        ({"import_errors": [["cell 1", "import a", 3]]}, r"\[where, statement, error\]"),
        ({"import_errors": {"a": 1}}, "'import_errors' must be a JSON list"),
    ],
)
def test_a_malformed_load_report_is_refused_with_the_field_named(data, message):
    with pytest.raises(ProtocolError, match=message):
        load_report(data)
