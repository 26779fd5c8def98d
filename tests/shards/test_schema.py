"""Schema: encode/decode round trip, validation messages that name the field, keys, version tags."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from shards.schema import (
    SUBJECT_SCHEMA,
    Encoding,
    FieldSpec,
    SampleSchema,
    SchemaError,
    SchemaVersionError,
    decode,
    encode,
    make_key,
    schema_for,
    split_member_name,
)
from tests.shards.samples import make_subject


def test_round_trip_keeps_every_field():
    sample = make_subject(with_optional=True)
    members = encode(sample)
    expected = {f"{stem}{i:02d}.png" for stem in ("view", "mask", "normal") for i in range(3)}
    expected |= {"cameras.json", "smpl.json", "normalization.json", "meta.json", "keypoints.npy", "schema.json"}
    assert set(members) == expected
    assert json.loads(members["schema.json"]) == {"name": "subject", "version": 1}

    back = decode(members, where="test")
    np.testing.assert_array_equal(back.views, sample.views)
    np.testing.assert_array_equal(back.masks, sample.masks)
    np.testing.assert_array_equal(back.normals, sample.normals)
    np.testing.assert_array_equal(back.keypoints, sample.keypoints)
    assert back.keypoints.dtype == np.float32
    for original, decoded in zip(sample.cameras, back.cameras):
        for name in ("K", "R", "t"):
            np.testing.assert_allclose(decoded[name], original[name])
        assert (decoded["width"], decoded["height"], decoded["convention"]) == (16, 16, "opencv")
    np.testing.assert_allclose(back.smpl["body_pose"], sample.smpl["body_pose"])
    assert back.smpl["body_pose"].shape == (23, 3)
    assert back.smpl["body_model"] == "open body model (Anny-derived), not SMPL"
    np.testing.assert_allclose(back.normalization["center"], sample.normalization["center"])
    assert back.meta == sample.meta
    assert back.key == "thuman21__s0"


def test_optional_fields_may_be_absent():
    members = encode(make_subject())
    assert not any(name.startswith("normal0") or name == "keypoints.npy" for name in members)
    back = decode(members)
    assert back.normals is None and back.keypoints is None


def test_more_than_100_views_use_wider_indices():
    spec = SUBJECT_SCHEMA.field("views")
    assert spec.member_name(7, 20) == "view07.png"
    assert spec.member_name(7, 120) == "view007.png"
    assert SUBJECT_SCHEMA.match_member("view119.png") == (spec, 119)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: setattr(s, "masks", s.masks[:2]), "'masks' has 2 views, expected N=3"),
        (lambda s: setattr(s, "masks", s.masks[..., None]), "'masks' must be uint8 (N, H, W)"),
        (lambda s: setattr(s, "views", s.views.astype(np.float32)), "'views' must be uint8"),
        (lambda s: s.cameras.pop(), "'cameras' must be a list of N=3 dicts"),
        (lambda s: s.cameras[1].update(K=np.eye(4)), "'cameras'[1].K must have shape (3, 3)"),
        (lambda s: s.cameras[0].update(convention="opengl"), "convention must be one of ('opencv',)"),
        (lambda s: s.cameras[2].update(width=32), "'cameras'[2] is 32x16 (WxH)"),
        (lambda s: s.smpl.update(body_pose=np.zeros((24, 3))), "'smpl'.body_pose must have shape (23, 3)"),
        (lambda s: s.smpl.pop("body_model"), "'smpl' is missing key 'body_model'"),
        (lambda s: s.normalization.update(scale=float("nan")), "'normalization'.scale must be a finite number"),
        (lambda s: s.meta.pop("dataset"), "'meta' is missing key 'dataset'"),
        (lambda s: setattr(s, "keypoints", np.zeros((3, 17, 3))), "'keypoints' must have dtype float32"),
        (lambda s: setattr(s, "keypoints", np.zeros((2, 17, 3), np.float32)), "'keypoints' must have shape (3, *, 3)"),
        (lambda s: setattr(s, "views", s.views[:0]), "'views' needs at least one view"),
    ],
)
def test_validation_names_the_field(mutate, message):
    sample = make_subject()
    mutate(sample)
    with pytest.raises(SchemaError) as caught:
        encode(sample)
    assert message in str(caught.value)


def test_decode_refuses_unknown_version_and_names_where():
    members = encode(make_subject())
    members["schema.json"] = json.dumps({"name": "subject", "version": 7}).encode()
    with pytest.raises(SchemaVersionError, match=r"shard a\.tar sample k: schema 'subject' version 7 is not known"):
        decode(members, where="shard a.tar sample k")
    del members["schema.json"]
    with pytest.raises(SchemaError, match="has no schema.json"):
        decode(members, where="x")
    with pytest.raises(SchemaVersionError, match="not known"):
        schema_for("clip", 2)


def test_decode_refuses_pickles_unknown_members_and_gaps():
    members = encode(make_subject())
    with pytest.raises(SchemaError, match="'extra.pkl' has a forbidden type"):
        decode({**members, "extra.pkl": b"\x80\x04N."})
    with pytest.raises(SchemaError, match="'depth00.png' is not a field"):
        decode({**members, "depth00.png": members["view00.png"]})
    gapped = {k: v for k, v in members.items() if k != "view01.png"}
    with pytest.raises(SchemaError, match=r"'views' has view indices \[0, 2\]"):
        decode(gapped)
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(SchemaError, match="keypoints.npy: not a plain .npy array"):
        decode({**members, "keypoints.npy": buffer.getvalue()})
    with pytest.raises(SchemaError, match="mask00.png: expected a single-channel PNG"):
        decode({**members, "mask00.png": members["view00.png"]})
    with pytest.raises(SchemaError, match="view02.png: not a readable PNG"):
        decode({**members, "view02.png": b"garbage"})


def test_make_key_is_dot_free_and_safe():
    assert make_key("THuman2.1", "0001") == "THuman2-1__0001"
    assert make_key("mvhumannet", "a/b c.d") == "mvhumannet__a-b-c-d"
    assert make_key("x__y", "z") == "x_y__z"  # the separator stays unique
    key = make_key("2K2K", "../../etc.passwd")
    assert "." not in key and "/" not in key
    with pytest.raises(ValueError, match="subject_id"):
        make_key("thuman", "...")
    with pytest.raises(ValueError, match="dataset"):
        make_key(3, "a")


def test_member_names_split_like_webdataset():
    assert split_member_name("thuman__0001.view07.png") == ("thuman__0001", "view07.png")
    assert split_member_name("dir/k.cameras.json") == ("dir/k", "cameras.json")
    assert split_member_name("nodot") is None


def test_later_schemas_are_declared_the_same_way():
    clip = SampleSchema(
        name="clip",
        version=1,
        fields=(
            FieldSpec("reference", "ref.png", Encoding.PNG_RGB),
            FieldSpec("targets", "target", Encoding.PNG_RGB, per_view=True),
            FieldSpec("normals", "normal", Encoding.PNG_RGB, per_view=True),
        ),
    )
    rng = np.random.default_rng(0)
    values = {
        "reference": rng.integers(0, 255, (8, 8, 3), dtype=np.uint8),
        "targets": rng.integers(0, 255, (4, 8, 8, 3), dtype=np.uint8),
        "normals": rng.integers(0, 255, (4, 8, 8, 3), dtype=np.uint8),
    }
    members = clip.encode_fields(values)
    assert {"ref.png", "target03.png", "normal00.png", "schema.json"} <= set(members)
    back = clip.decode_members(members)
    np.testing.assert_array_equal(back["targets"], values["targets"])
    with pytest.raises(SchemaVersionError, match="expected 'subject' v1"):
        SUBJECT_SCHEMA.decode_members(members)
    with pytest.raises(ValueError, match="per-view image field"):
        SampleSchema("bad", 1, (FieldSpec("x", "x.json", Encoding.JSON),))
