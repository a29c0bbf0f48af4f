import subprocess
import sys
import textwrap

import pytest

import textme_sdk as tm


def test_builtins_are_registered_through_hooks():
    names = [r.name for r in tm.list_anchors()]
    assert "minilm" in names and "sentence-transformers" in names
    row = next(r for r in tm.plugin_status() if r["plugin"] == "textme_sdk.builtin.anchors")
    assert row["source"] == "built-in" and "minilm" in row["anchors"]


def test_unknown_names_list_what_is_installed_and_how_to_add(monkeypatch):
    from textme_sdk import plugins

    monkeypatch.setitem(plugins.KNOWN_EXTRAS, "hologram", "holo")
    with pytest.raises(tm.UnknownPluginError) as info:
        tm.get_encoder("hologram")
    msg = str(info.value)
    assert "no encoder named 'hologram'" in msg and "pip install 'textme-sdk[holo]'" in msg
    with pytest.raises(tm.UnknownPluginError, match="installed: .*minilm"):
        tm.get_anchor("nope")


def test_factories_are_cheap(gapdemo):
    enc = tm.get_encoder("gapdemo")
    assert not enc.is_loaded and enc.name == "gapdemo"


def _fake_dist(site, name, module_src, module_name):
    (site / f"{module_name}.py").write_text(textwrap.dedent(module_src))
    info = site / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[textme]\n{name} = {module_name}\n")


def test_broken_plugin_is_reported_and_does_not_break_others(tmp_path, monkeypatch):
    _fake_dist(tmp_path, "broken", "raise ImportError('missing dependency foo')\n", "broken_mod")
    _fake_dist(tmp_path, "failing-register", """
        from textme_sdk import hookimpl
        @hookimpl
        def register_encoders(register):
            raise RuntimeError('bad registration')
        """, "failing_mod")
    monkeypatch.syspath_prepend(str(tmp_path))
    tm.reload_plugins()
    try:
        status = {r["plugin"]: r for r in tm.plugin_status()}
        assert "missing dependency foo" in status["broken"]["error"]
        assert "bad registration" in status["failing-register"]["error"]
        assert tm.get_anchor("minilm").name == "minilm"
        with pytest.raises(tm.UnknownPluginError, match="failed to load: .*broken"):
            tm.get_encoder("whatever")
    finally:
        monkeypatch.undo()
        tm.reload_plugins()


def test_load_plugins_env_limits_entry_points(gapdemo, monkeypatch):
    monkeypatch.setenv("TEXTME_LOAD_PLUGINS", "")
    tm.reload_plugins()
    assert "gapdemo" not in [r.name for r in tm.list_encoders()]
    assert "minilm" in [r.name for r in tm.list_anchors()]  # built-ins always load
    monkeypatch.setenv("TEXTME_LOAD_PLUGINS", "textme-gapdemo")
    tm.reload_plugins()
    assert "gapdemo" in [r.name for r in tm.list_encoders()]


def test_import_is_light():
    code = "import sys, textme_sdk; textme_sdk.list_anchors(); print('sentence_transformers' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
