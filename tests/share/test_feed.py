"""``BundleFolder``: the gateway's folder of received bundles, read once per new file."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from distillwatch.share.errors import IntelError
from distillwatch.share.feed import BundleFolder
from tests.share.intel_world import IntelFiles, intel_files


@pytest.fixture
def files(tmp_path: Path) -> IntelFiles:
    return intel_files(tmp_path / "intel")


def folder(files: IntelFiles, tmp_path: Path) -> tuple[Path, BundleFolder]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    return inbox, BundleFolder.open(inbox, members=files.members, group_secret=files.secret)


def members(feed: BundleFolder) -> set[str]:
    return {r.member for r in feed.matcher.index.refs.values()}


def test_new_files_only_and_each_once(files: IntelFiles, tmp_path: Path) -> None:
    inbox, feed = folder(files, tmp_path)
    assert feed.prepare() is None  # empty
    stix = files.a_bundle()
    a = files.signed("member-a", stix, "a.json", folder=inbox)
    install = feed.prepare()
    assert install is not None and not feed.matcher.index.refs  # built, not yet installed
    install()
    assert members(feed) == {"member-a"}
    assert feed.prepare() is None  # nothing new
    shutil.copy(a, inbox / "a-copy.json")  # the same envelope again
    a.write_bytes(a.read_bytes())  # rewritten unchanged
    (inbox / ".tmp-partial.json").write_text("{")  # being written by write_json
    assert feed.prepare() is None and feed.rejected == {}
    # the same bundle signed again (other bytes, same bundle id): a replay
    files.now += timedelta(seconds=1)
    again = files.signed("member-a", stix, "again.json", folder=inbox)
    assert feed.prepare() is None
    assert feed.rejected[again].startswith("bundle rejected (replayed)")


def test_a_rebuild_that_finishes_late_is_dropped(files: IntelFiles, tmp_path: Path) -> None:
    inbox, feed = folder(files, tmp_path)
    files.signed("member-a", files.a_bundle(), "a.json", folder=inbox)
    first = feed.prepare()
    files.signed("member-c", files.c_bundle(), "c.json", folder=inbox)
    second = feed.prepare()
    assert first is not None and second is not None
    second()
    first()
    assert members(feed) == {"member-a", "member-c"}


def test_a_missing_folder_is_an_error(files: IntelFiles, tmp_path: Path) -> None:
    with pytest.raises(IntelError, match="does not exist"):
        BundleFolder.open(tmp_path / "nope", members=files.members, group_secret=files.secret)
