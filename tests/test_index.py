"""Tests of video listing (folder, PySlowFast CSV and Kinetics CSV layouts) and of the cached validity index."""

import gzip
import json
import logging
import os
import shutil
import subprocess
import sys

import av
import pytest

from stica_ext.config import get_cfg
from stica_ext.datasets import index as ix
from stica_ext.datasets import synthetic as synth

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FPS = 10
SR = 8000
SIZE = 32

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Tiny source files: 1.5 s audio-visual, 1.5 s video-only, 0.5 s audio-visual, 1.5 s video with 0.3 s audio,
    random bytes, and a truncated mp4."""
    d = tmp_path_factory.mktemp("media")
    clip = synth.generate_clip(5, 3, size=SIZE, duration=1.5, fps=FPS, sample_rate=SR)
    files = {
        "good": (clip.frames, clip.audio),
        "no_audio": (clip.frames, None),
        "short": (clip.frames[:5], clip.audio[: SR // 2]),
        "short_audio": (clip.frames, clip.audio[: int(0.3 * SR)]),
    }
    out = {}
    for name, (frames, audio) in files.items():
        out[name] = str(d / f"{name}.mp4")
        synth.write_av_file(out[name], frames, audio, FPS, SR)
    out["corrupt"] = str(d / "corrupt.mp4")
    with open(out["corrupt"], "wb") as f:
        f.write(bytes(range(256)) * 40)
    out["truncated"] = str(d / "truncated.mp4")
    with open(out["good"], "rb") as src, open(out["truncated"], "wb") as dst:
        data = src.read()
        dst.write(data[: len(data) // 2])
    return out


def _put(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if src is None:
        open(dst, "wb").close()
    else:
        shutil.copyfile(src, dst)
    return dst


def _cfg(root, **data):
    cfg = get_cfg()
    cfg.defrost()
    cfg.DATA.PATH_TO_DATA_DIR = str(root)
    for key, value in {"LAYOUT": "auto", "SPLIT_DIRS": [], "VIDEO_EXTENSIONS": list(ix.VIDEO_EXTENSIONS),
                       "CLASS_NAMES_FILE": "", "PROBE_WORKERS": 1, "INDEX_CACHE_DIR": "", **data}.items():
        cfg.DATA[key] = value
    cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE, cfg.DATA.TARGET_FPS = 10, 1, 10  # 1 s clips
    cfg.AUDIO.NUM_SEC = 1.0
    return cfg


@pytest.fixture
def count_probes(monkeypatch):
    calls = []
    real = ix.probe_video

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(ix, "probe_video", counting)
    return calls


# ---------------------------------------------------------------------------------------------------------------
# Listing
# ---------------------------------------------------------------------------------------------------------------


def test_folder_layout_sorted_class_folders(tmp_path, media):
    root = tmp_path / "kinetics"
    for cls, names in {"zebra": ["b.mp4", "a.MKV"], "apple": ["x.avi"], "mango": ["m.webm", "notes.txt"]}.items():
        for n in names:
            _put(media["good"], str(root / "train_avi-480p" / cls / n))
    _put(media["good"], str(root / "train_avi-480p" / ".hidden" / "h.mp4"))
    _put(media["good"], str(root / "train_avi-480p" / "apple" / ".partial.mp4"))
    _put(media["good"], str(root / "validate" / "zebra" / "v.mp4"))  # val lacks two classes
    cfg = _cfg(root, LAYOUT="folders", SPLIT_DIRS=["train:train_avi-480p"])

    paths, labels, names = ix.list_videos(cfg, "train")
    assert names == ["apple", "mango", "zebra"]
    rel = [os.path.relpath(p, root / "train_avi-480p") for p in paths]
    assert rel == ["apple/x.avi", "mango/m.webm", "zebra/a.MKV", "zebra/b.mp4"]
    assert labels == [0, 1, 2, 2]
    assert all(os.path.isabs(p) for p in paths)

    # "val" finds the folder "validate"; classes are numbered like the training split's.
    paths, labels, names = ix.list_videos(cfg, "val")
    assert names == ["apple", "mango", "zebra"] and labels == [2]
    assert paths == [str(root / "validate" / "zebra" / "v.mp4")]

    # The same through "auto" and through a plain options dict.
    assert ix.list_videos(_cfg(root, SPLIT_DIRS=["train:train_avi-480p"]), "train")[1] == [0, 1, 2, 2]
    opts = {"root": str(root), "layout": "folders", "split_dirs": {"train": "train_avi-480p"}, "extensions": [".mp4"]}
    assert ix.list_videos(opts, "train")[1] == [2]

    # A class names file fixes the numbering.
    classes = tmp_path / "classes.txt"
    classes.write_text("zebra\nmango\napple\nkiwi\n")
    _, labels, names = ix.list_videos(_cfg(root, LAYOUT="folders", SPLIT_DIRS=["train:train_avi-480p"],
                                           CLASS_NAMES_FILE=str(classes)), "train")
    assert names == ["zebra", "mango", "apple", "kiwi"] and labels == [2, 1, 0, 0]


def test_folder_layout_root_as_split(tmp_path, media):
    root = tmp_path / "ucf"
    for cls in ("b", "a"):
        _put(media["good"], str(root / cls / "v.mp4"))
    _put(media["good"], str(root / "test" / "a" / "t.mp4"))  # another split's folder is not a class
    paths, labels, names = ix.list_videos(_cfg(root, LAYOUT="folders", SPLIT_DIRS=["train:."]), "train")
    assert names == ["a", "b"] and labels == [0, 1]


def test_csv_layout_prefix_and_separator(tmp_path, media):
    root = tmp_path / "lists"
    _put(media["good"], str(root / "videos" / "c1.mp4"))
    _put(media["good"], str(tmp_path / "elsewhere" / "c2.mp4"))
    (root / "train.csv").write_text(f"c1.mp4,2\n\n{tmp_path / 'elsewhere' / 'c2.mp4'},0\n")
    cfg = _cfg(root, LAYOUT="csv")
    cfg.DATA.PATH_PREFIX = "videos"
    cfg.DATA.PATH_LABEL_SEPARATOR = ","
    paths, labels, names = ix.list_videos(cfg, "train")
    # A relative path gets the prefix and is resolved against the CSV folder; an absolute one stays as it is.
    assert paths == [str(root / "videos" / "c1.mp4"), str(tmp_path / "elsewhere" / "c2.mp4")]
    assert labels == [2, 0] and names == ["0", "1", "2"]

    (root / "classes.txt").write_text("cat\ndog\nbird\n")
    assert ix.list_videos(cfg, "train")[2] == ["cat", "dog", "bird"]
    # "auto" picks the CSV; "val" tries val.csv then validate.csv.
    (root / "validate.csv").write_text("videos/c1.mp4 1\n")
    paths, labels, _ = ix.list_videos(_cfg(root), "val")
    assert paths == [str(root / "videos" / "c1.mp4")] and labels == [1]


def test_synthetic_dataset_csv(synth_dir):
    paths, labels, names = ix.list_videos(_cfg(synth_dir), "train")
    assert len(paths) == 12 and names == synth.CLASS_NAMES
    assert all(p.startswith(os.path.join(synth_dir, "videos")) and os.path.isfile(p) for p in paths)


def test_missing_or_empty_inputs_name_the_path(tmp_path, media):
    root = tmp_path / "data"
    _put(media["good"], str(root / "train" / "a" / "v.mp4"))
    with pytest.raises(FileNotFoundError, match=str(root / "val")):
        ix.list_videos(_cfg(root, LAYOUT="folders"), "val")
    with pytest.raises(FileNotFoundError, match=str(root / "test.csv")):
        ix.list_videos(_cfg(root, LAYOUT="csv"), "test")
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
        ix.list_videos(_cfg(tmp_path / "nope"), "train")
    with pytest.raises(FileNotFoundError, match="tried"):
        ix.list_videos(_cfg(root), "test")  # auto: neither CSV nor folder
    os.makedirs(root / "test" / "a")
    with pytest.raises(ValueError, match=str(root / "test")):
        ix.list_videos(_cfg(root, LAYOUT="folders"), "test")  # class folder without videos
    os.makedirs(root / "empty")
    with pytest.raises(ValueError, match="no class folders"):
        ix.list_videos(_cfg(root, LAYOUT="folders", SPLIT_DIRS=["val:empty"]), "val")
    (root / "val.csv").write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        ix.list_videos(_cfg(root, LAYOUT="csv"), "val")
    with pytest.raises(ValueError, match="DATA.LAYOUT"):
        ix.list_videos(_cfg(root, LAYOUT="lmdb"), "train")
    with pytest.raises(ValueError, match="PATH_TO_DATA_DIR"):
        ix.list_videos(_cfg(""), "train")


def test_kinetics_csv_layout(tmp_path, media, caplog):
    root = tmp_path / "k400"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "train.csv").write_text(
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        '"air drumming",abc-DEF_123,40,50,train,0\n'
        '"passing American football (in game)",zzzzzzzzzzz,0,10,train,0\n'
        '"air drumming",missing0001,5,15,train,0\n'
        "abseiling,--x_y_z-123,1,11,train,1\n")
    (root / "validate.csv").write_text(
        "label,youtube_id,time_start,time_end,split\n"
        '"air drumming",vvvvvvvvvvv,3,13,val\n')
    (root / "test.csv").write_text("youtube_id,time_start,time_end,split\nttttttttttt,7,17,test\n")
    _put(media["good"], str(root / "train" / "air drumming" / "abc-DEF_123_000040_000050.mp4"))
    _put(media["good"], str(root / "train" / "passing American football (in game)" / "zzzzzzzzzzz_000000_000010.mp4"))
    _put(media["good"], str(root / "train" / "abseiling" / "--x_y_z-123_000001_000011.mkv"))
    _put(media["good"], str(root / "val" / "vvvvvvvvvvv_000003_000013.mp4"))  # flat split folder
    _put(media["good"], str(root / "test" / "ttttttttttt.mp4"))  # named by youtube id only

    cfg = _cfg(root)  # auto detects the Kinetics header
    with caplog.at_level(logging.WARNING, logger="stica_ext.datasets.index"):
        paths, labels, names = ix.list_videos(cfg, "train")
    assert names == ["abseiling", "air drumming", "passing American football (in game)"]
    assert [os.path.basename(p) for p in paths] == ["abc-DEF_123_000040_000050.mp4", "zzzzzzzzzzz_000000_000010.mp4",
                                                    "--x_y_z-123_000001_000011.mkv"]
    assert labels == [1, 2, 0]
    assert "1 of 4 clips" in caplog.text and "missing0001_000005_000015" in caplog.text

    paths, labels, names = ix.list_videos(cfg, "val")
    assert labels == [1] and len(names) == 3 and paths[0].endswith("vvvvvvvvvvv_000003_000013.mp4")
    paths, labels, names = ix.list_videos(_cfg(root, LAYOUT="kinetics_csv"), "test")
    assert labels == [-1] and len(names) == 3 and paths[0].endswith("ttttttttttt.mp4")


# ---------------------------------------------------------------------------------------------------------------
# Probing and validity
# ---------------------------------------------------------------------------------------------------------------


def test_probe_results(media, tmp_path):
    good = ix.probe_video(media["good"])
    assert good["status"] == "ok" and good["has_audio"]
    assert good["video_sec"] == pytest.approx(1.5, abs=0.01) and good["audio_sec"] == pytest.approx(1.5, abs=0.01)
    assert (good["width"], good["height"], good["fps"], good["audio_rate"]) == (SIZE, SIZE, FPS, SR)
    no_audio = ix.probe_video(media["no_audio"])
    assert no_audio["status"] == "ok" and not no_audio["has_audio"] and no_audio["audio_sec"] is None
    assert ix.probe_video(media["short"])["video_sec"] == pytest.approx(0.5, abs=0.01)
    assert ix.probe_video(media["short_audio"])["audio_sec"] == pytest.approx(0.3, abs=0.01)
    for name in ("corrupt", "truncated"):
        r = ix.probe_video(media[name])
        assert r["status"] == "corrupt" and r["error"]
    assert ix.probe_video(str(tmp_path / "none.mp4"))["status"] == "missing"
    assert ix.probe_video(_put(None, str(tmp_path / "zero.mp4")))["status"] == "empty"


def test_duration_fallback_without_metadata(media, monkeypatch):
    with av.open(media["good"]) as container:
        for stream in container.streams:
            assert ix._duration_from_packets(container, stream) == pytest.approx(
                float(stream.duration * stream.time_base), abs=1e-6)
    assert ix._parse_hms("00:01:02.500000000") == pytest.approx(62.5)
    monkeypatch.setattr(ix, "_metadata_duration", lambda container, stream: None)
    r = ix.probe_video(media["short_audio"])
    assert r["video_sec"] == pytest.approx(1.5, abs=0.01) and r["audio_sec"] == pytest.approx(0.3, abs=0.01)


def _validity_dataset(root, media):
    files = {"a/good.mp4": media["good"], "a/corrupt.mp4": media["corrupt"], "a/zero.mp4": None,
             "b/no_audio.mp4": media["no_audio"], "b/short.mp4": media["short"],
             "b/short_audio.mp4": media["short_audio"], "b/good2.mp4": media["good"]}
    for rel, src in files.items():
        _put(src, str(root / "train" / rel))


def test_validity_counts_and_audio_policy(tmp_path, media, count_probes):
    root = tmp_path / "ds"
    _validity_dataset(root, media)
    paths, _, _ = ix.list_videos(_cfg(root), "train")
    paths = paths + [str(root / "train" / "a" / "gone.mp4")]  # listed but missing (as a CSV row may be)
    names = [os.path.basename(p) for p in paths]
    cache = ix.default_cache_path(root, "train")

    valid, s = ix.build_valid_index(paths, 1.0, 1.0, True, 1, cache, missing_audio="skip", progress=False)
    assert [names[i] for i in valid] == ["good.mp4", "good2.mp4"]
    assert s.total == 8 and s.valid == 2 and s.excluded == 6
    assert s.counts == {"missing": 1, "empty": 1, "corrupt": 1, "no_video": 0, "no_audio": 1, "video_too_short": 1,
                        "audio_too_short": 1}
    assert s.probed == 6 and s.cached == 0 and len(count_probes) == 6  # missing / empty files need no probe
    assert "corrupt.mp4" in s.examples["corrupt"][0]

    # "silence" keeps the video without audio and the one with a short track.
    valid, s = ix.build_valid_index(paths, 1.0, 1.0, True, 1, cache, missing_audio="silence", progress=False)
    assert sorted(names[i] for i in valid) == ["good.mp4", "good2.mp4", "no_audio.mp4", "short_audio.mp4"]
    assert s.kept_silent == 1 and s.kept_short_audio == 1 and s.counts["no_audio"] == 0
    # Without audio only the video matters; thresholds apply at load time, from the cache (no new probe).
    valid, s = ix.build_valid_index(paths, 0.4, 1.0, False, 1, cache, progress=False)
    assert sorted(names[i] for i in valid) == ["good.mp4", "good2.mp4", "no_audio.mp4", "short.mp4",
                                               "short_audio.mp4"]
    valid, s = ix.build_valid_index(paths, 2.0, 1.0, False, 1, cache, progress=False)
    assert valid == [] and s.counts["video_too_short"] == 5
    assert len(count_probes) == 6 and s.cached == 6 and s.probed == 0


def test_cache_next_to_data_reused_and_invalidated(tmp_path, media, count_probes, monkeypatch):
    root = tmp_path / "ds"
    _validity_dataset(root, media)
    cfg = _cfg(root)
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    paths, _, _ = ix.list_videos(cfg, "train")
    valid, s = ix.build_valid_index_from_cfg(cfg, paths, "train", progress=False)
    cache = root / ".stica_index" / "train.json.gz"
    assert s.cache_path == str(cache) and cache.is_file() and len(count_probes) == 6 and len(valid) == 2
    assert os.listdir(workdir) == []  # nothing written to the working directory
    with gzip.open(cache, "rt") as f:
        data = json.load(f)
    entry = data["entries"][paths[0]]
    assert data["version"] == ix.INDEX_VERSION and entry["size"] == os.path.getsize(paths[0])

    # Re-listing the folder does not see the index folder; a second run probes nothing.
    assert ix.list_videos(cfg, "train")[0] == paths
    _, s = ix.build_valid_index_from_cfg(cfg, paths, "train", progress=False)
    assert len(count_probes) == 6 and s.probed == 0 and s.cached == 6

    # Another working directory uses the same index.
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    valid2, s = ix.build_valid_index_from_cfg(cfg, paths, "train", progress=False)
    assert valid2 == valid and len(count_probes) == 6 and os.listdir(other) == []

    # A changed file (new content, or only a new mtime) is probed again; the others are not.
    good = root / "train" / "a" / "good.mp4"
    shutil.copyfile(media["short"], good)
    short = root / "train" / "b" / "short.mp4"
    st = os.stat(short)
    os.utime(short, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    valid3, s = ix.build_valid_index_from_cfg(cfg, paths, "train", progress=False)
    assert sorted(count_probes[6:]) == sorted([str(good), str(short)]) and s.probed == 2
    assert [os.path.basename(paths[i]) for i in valid3] == ["good2.mp4"]  # good.mp4 is now too short

    # A deleted file disappears from the index; unrelated up-to-date entries of other lists are kept.
    os.remove(short)
    _, s = ix.build_valid_index_from_cfg(cfg, paths[:2], "train", progress=False)
    entries = ix.load_cache(str(cache))
    assert str(short) not in entries and set(entries) == {p for p in paths if p != str(short)} - {
        str(root / "train" / "a" / "zero.mp4")}
    assert len(count_probes) == 8


def test_cache_falls_back_to_user_dir_when_data_is_read_only(tmp_path, media, count_probes, monkeypatch):
    root = tmp_path / "ro"
    _validity_dataset(root, media)
    (root / ".stica_index").write_text("not a folder")  # the index folder cannot be created
    monkeypatch.setenv("STICA_EXT_CACHE", str(tmp_path / "user_cache"))
    cfg = _cfg(root)
    paths, _, _ = ix.list_videos(cfg, "train")
    _, s = ix.build_valid_index_from_cfg(cfg, paths, "train", progress=False)
    fallback = ix.fallback_cache_path(ix.default_cache_path(root, "train"))
    assert s.cache_path == fallback and fallback.startswith(str(tmp_path / "user_cache" / "index"))
    assert os.path.isfile(fallback) and len(count_probes) == 6
    _, s = ix.build_valid_index_from_cfg(cfg, paths, "train", progress=False)
    assert len(count_probes) == 6 and s.cached == 6 and s.cache_path == fallback


def test_index_cache_dir_and_corrupt_cache(tmp_path, media, count_probes):
    root = tmp_path / "ds"
    _put(media["good"], str(root / "train" / "a" / "v.mp4"))
    cfg = _cfg(root, INDEX_CACHE_DIR=str(tmp_path / "indexes"))
    paths, _, _ = ix.list_videos(cfg, "train")
    _, s = ix.build_valid_index_from_cfg(cfg, paths, "train", progress=False)
    assert s.cache_path.startswith(str(tmp_path / "indexes")) and not (root / ".stica_index").exists()
    with open(s.cache_path, "wb") as f:
        f.write(b"\x1f\x8bgarbage")
    valid, s = ix.build_valid_index_from_cfg(cfg, paths, "train", progress=False)
    assert valid == [0] and len(count_probes) == 2  # unreadable index: ignored, probed again, rewritten
    assert ix.load_cache(s.cache_path)


def test_probe_pool_matches_in_process(tmp_path, media, monkeypatch):
    monkeypatch.setattr(ix, "MIN_POOL_JOBS", 0)
    paths = [media[k] for k in ("good", "no_audio", "short", "short_audio", "corrupt", "truncated")]
    pooled, probed, _, _ = ix.probe_videos(paths, num_workers=2, cache_path=None, progress=False)
    assert probed == len(paths)
    for path, entry in zip(paths, pooled):
        ref = ix.probe_video(path)
        assert {k: entry[k] for k in ref if k != "error"} == {k: v for k, v in ref.items() if k != "error"}


_SCRIPT = """
import sys
from stica_ext.datasets import index as ix
ix.MIN_POOL_JOBS = 0
entries = ix.probe_videos(sys.argv[1:], num_workers=2, cache_path=None, progress=False)[0]
print("probed", len(entries), sorted(e["status"] for e in entries))
"""


@pytest.mark.parametrize("guarded", [True, False])
def test_probe_pool_from_a_script(tmp_path, media, guarded):
    # the pool's processes are spawned and import the main script: without a main guard each one would run the
    # script again; that ends at once with an error that names the guard, instead of hanging or running N times
    body = _SCRIPT
    if guarded:
        body = "def main():\n" + "".join(f"    {line}\n" for line in body.strip().splitlines())
        body += "\nif __name__ == '__main__':\n    main()\n"
    script = tmp_path / "probe_script.py"
    script.write_text(body)
    paths = [media["good"], media["corrupt"], media["no_audio"]]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, str(script), *paths], capture_output=True, text=True, env=env, timeout=300)
    if guarded:
        assert r.returncode == 0, r.stderr[-2000:]
        assert r.stdout.count("probed 3") == 1 and "'corrupt'" in r.stdout and "'ok'" in r.stdout
    else:
        assert r.returncode != 0 and "probed" not in r.stdout
        assert 'if __name__ == "__main__":' in r.stderr


def test_map_in_processes_yields_every_result_once():
    from stica_ext.utils.processes import map_in_processes

    out = list(map_in_processes(abs, [-i for i in range(10)], 2, chunksize=3))
    assert sorted(out) == list(range(10))
    assert list(map_in_processes(abs, [-i for i in range(10)], 1)) == list(range(10))  # in process, in order


def test_progress_counter_on_stderr(tmp_path, media, capsys):
    ix.build_valid_index([media["good"], media["no_audio"]], 1.0, 1.0, True, 1, None, progress="train")
    err = capsys.readouterr().err
    assert "[video index train] probed 2/2" in err


# ---------------------------------------------------------------------------------------------------------------
# tools/prepare_dataset.py
# ---------------------------------------------------------------------------------------------------------------


def test_prepare_dataset_tool(tmp_path, media, capsys, monkeypatch):
    import prepare_dataset

    root = tmp_path / "ds"
    _validity_dataset(root, media)
    _put(media["good"], str(root / "val" / "a" / "v.mp4"))
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(f"DATA:\n  PATH_TO_DATA_DIR: {root}\n  NUM_FRAMES: 10\n  TARGET_FPS: 10\n")
    monkeypatch.chdir(tmp_path)

    assert prepare_dataset.main(["--cfg", str(cfg_file), "AUDIO.MISSING", "silence", "--workers", "1",
                                 "--quiet"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("split", "train", "val "))}
    header = rows["split"]
    train = dict(zip(header, rows["train"]))
    assert (train["total"], train["valid"], train["corrupt"], train["empty"], train["no_audio"]) == ("7", "4", "1",
                                                                                                     "1", "0")
    assert train["kept_silent"] == "1" and train["video_too_short"] == "1"
    assert dict(zip(header, rows["val"]))["valid"] == "1"
    assert (root / ".stica_index" / "train.json.gz").is_file() and (root / ".stica_index" / "val.json.gz").is_file()

    # Splits given explicitly must exist; trailing KEY VALUE pairs after --splits are config overrides.
    args = prepare_dataset.parse_args(["--cfg", str(cfg_file), "--splits", "train", "test", "AUDIO.NUM_SEC", "2"])
    assert args.splits == ["train", "test"] and args.opts == ["AUDIO.NUM_SEC", "2"]
    assert prepare_dataset.main(["--cfg", str(cfg_file), "--splits", "test", "--quiet"]) == 1
    assert "test" in capsys.readouterr().err
