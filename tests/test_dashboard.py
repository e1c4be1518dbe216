"""fastbp.dashboard: the asv dashboard's CDN files replaced by npm packages (no network here:
a stand-in ``npm`` builds the tarballs)."""
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fastbp import dashboard
from fastbp.__main__ import main as cli

CDN_PAGE = textwrap.dedent("""\
    <!doctype html>
    <html><head>
    <script src="https://code.jquery.com/jquery-3.3.1.min.js" integrity="sha256-abc=" crossorigin="anonymous" onerror="js_load_failure()"></script>
    <script src="https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js" integrity="sha512-x==" crossorigin="anonymous" referrerpolicy="no-referrer" onerror="js_load_failure()"></script>
    <script src="https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.time.min.js" integrity="sha512-y==" crossorigin onerror="js_load_failure()"></script>
    <script language="javascript" type="text/javascript" src="jquery.flot.axislabels.js"></script>
    <script src="https://cdn.jsdelivr.net/npm/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js" integrity="sha256-z=" crossorigin="anonymous" onerror="js_load_failure()"></script>
    <script src="https://cdnjs.cloudflare.com/ajax/libs/stupidtable/1.0.1/stupidtable.min.js" integrity="sha512-s==" crossorigin="anonymous" onerror="js_load_failure()"></script>
    <script src="https://cdnjs.cloudflare.com/ajax/libs/blueimp-md5/2.19.0/js/md5.min.js" integrity="sha512-m==" crossorigin="anonymous" onerror="js_load_failure()"></script>
    <link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css" integrity="sha256-b=" crossorigin="anonymous">
    <link href="asv.css" rel="stylesheet" type="text/css"/>
    </head><body><a href="https://github.com/airspeed-velocity/asv/">asv</a></body></html>
    """)

#: What the stand-in registry holds: package@version -> files under package/.
PACKAGES = {
    "jquery@3.3.1": {"dist/jquery.min.js": "/* jquery */"},
    "flot@0.8.3": {"jquery.flot.js": "/* flot */", "jquery.flot.time.js": "/* time */"},
    "flot-orderbars@1.0.0": {"js/jquery.flot.orderBars.js": "/* orderbars */"},
    "stupid-table-plugin@1.1.3": {"stupidtable.min.js": "/* stupidtable */"},
    "blueimp-md5@2.19.0": {"js/md5.min.js": "/* md5 */"},
    "bootstrap@3.1.1": {
        "dist/css/bootstrap.min.css":
            "@font-face{src:url('../fonts/glyph.eot?#iefix') format('eot'),"
            "url(../fonts/glyph.woff) format('woff'),url(data:x)}",
        "dist/fonts/glyph.eot": "eot", "dist/fonts/glyph.woff": "woff",
    },
}

FAKE_NPM = textwrap.dedent("""\
    #!{python}
    import io, json, sys, tarfile
    packages = json.load(open({registry!r}))
    with open({calls!r}, "a") as log:
        log.write(" ".join(sys.argv[1:]) + "\\n")
    assert sys.argv[1] == "pack", sys.argv
    spec = sys.argv[2]
    if spec not in packages:
        sys.stderr.write("npm error 404 " + spec + "\\n")
        sys.exit(1)
    name, version = spec.rsplit("@", 1)
    filename = name + "-" + version + ".tgz"
    with tarfile.open(filename, "w:gz") as tar:
        files = dict(packages[spec], **{{"package.json": json.dumps({{"name": name}})}})
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo("package/" + path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    print(json.dumps([{{"filename": filename}}]))
    """)


@pytest.fixture
def fake_npm(tmp_path):
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps(PACKAGES))
    calls = tmp_path / "npm-calls.txt"
    calls.write_text("")
    npm = tmp_path / "npm"
    npm.write_text(FAKE_NPM.format(python=sys.executable, registry=str(registry), calls=str(calls)))
    npm.chmod(0o755)
    return npm, calls


def _site(tmp_path, html=CDN_PAGE):
    html_dir = tmp_path / "html"
    html_dir.mkdir(parents=True)
    (html_dir / "index.html").write_text(html)
    return html_dir


def test_asset_for_maps_each_cdn_to_its_npm_package():
    a = dashboard.asset_for("https://code.jquery.com/jquery-3.3.1.min.js")
    assert (a.package, a.version, a.path) == ("jquery", "3.3.1", "dist/jquery.min.js")
    cdnjs = "https://cdnjs.cloudflare.com/ajax/libs/"
    a = dashboard.asset_for(cdnjs + "flot/0.8.3/jquery.flot.time.min.js")
    assert (a.package, a.version, a.path) == ("flot", "0.8.3", "jquery.flot.time.min.js")
    a = dashboard.asset_for("https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/js/bootstrap.min.js")
    assert (a.package, a.version, a.path) == ("bootstrap", "3.1.1", "dist/js/bootstrap.min.js")
    # stupidtable 1.0.1 is on npm only as the same project's package at 1.1.3
    a = dashboard.asset_for(cdnjs + "stupidtable/1.0.1/stupidtable.min.js")
    assert (a.package, a.version) == ("stupid-table-plugin", "1.1.3")
    assert a.local == "vendor/stupid-table-plugin@1.1.3/stupidtable.min.js"
    with pytest.raises(ValueError, match="example.org"):
        dashboard.asset_for("https://example.org/lib.js")


def test_rewrite_points_tags_at_local_files_and_drops_integrity():
    urls = dashboard.external_urls(CDN_PAGE)
    assert len(urls) == 7 and not any("github.com" in u for u in urls)  # <a> links are left
    html = dashboard.rewrite(CDN_PAGE, {u: f"vendor/{i}.js" for i, u in enumerate(urls)})
    assert dashboard.external_urls(html) == []
    assert "integrity" not in html and "crossorigin" not in html
    handler = 'onerror="js_load_failure()"'
    assert html.count(handler) == CDN_PAGE.count(handler)
    assert 'src="jquery.flot.axislabels.js"' in html
    assert 'href="https://github.com/airspeed-velocity/asv/"' in html


def test_every_cdn_address_of_the_installed_asv_is_known():
    asv = pytest.importorskip("asv")
    page = Path(asv.__file__).parent / "www" / "index.html"
    urls = dashboard.external_urls(page.read_text(encoding="utf-8"))
    assert urls, "asv's index.html loads nothing from a CDN any more: drop the dashboard step?"
    for url in urls:
        dashboard.asset_for(url)  # raises for an address without an npm package


def test_vendor_dashboard_copies_files_and_rewrites_the_page(tmp_path, fake_npm):
    npm, calls = fake_npm
    html_dir = _site(tmp_path)
    cache = tmp_path / "cache"
    assets = dashboard.vendor_dashboard(html_dir, cache, npm=str(npm), log=lambda *a: None)
    assert len(assets) == 7
    html = (html_dir / "index.html").read_text()
    assert dashboard.external_urls(html) == []
    assert "integrity=" not in html and "crossorigin" not in html
    srcs = re.findall(r'(?:src|href)="(vendor/[^"]+)"', html)
    assert len(srcs) == 7
    for src in srcs:
        assert (html_dir / src).is_file(), src
    # minified flot is not on npm: the unminified file of the same release stands in
    assert "vendor/flot@0.8.3/jquery.flot.time.js" in srcs
    # the stylesheet's fonts come along, where its relative url()s expect them
    fonts = html_dir / "vendor" / "bootstrap@3.1.1" / "dist" / "fonts"
    assert sorted(p.name for p in fonts.iterdir()) == ["glyph.eot", "glyph.woff"]
    # one npm pack per package, kept in the cache: a second html folder costs no download
    assert len(calls.read_text().splitlines()) == 6
    again = _site(tmp_path / "again")
    dashboard.vendor_dashboard(again, cache, npm=str(npm), log=lambda *a: None)
    assert len(calls.read_text().splitlines()) == 6
    assert (again / "index.html").read_text() == html
    # a page already done is left as it is
    assert dashboard.vendor_dashboard(again, cache, npm=str(npm), log=lambda *a: None) == []


def test_vendor_dashboard_reports_a_package_npm_cannot_give(tmp_path, fake_npm):
    npm, _ = fake_npm
    page = CDN_PAGE.replace("blueimp-md5/2.19.0", "blueimp-md5/9.9.9")
    html_dir = _site(tmp_path, page)
    with pytest.raises(RuntimeError, match="npm pack blueimp-md5@9.9.9 failed"):
        dashboard.vendor_dashboard(html_dir, tmp_path / "cache", npm=str(npm), log=lambda *a: None)


def test_cli_without_published_html_says_what_to_do(tmp_path, capsys):
    assert cli(["dashboard", "--html-dir", str(tmp_path / "nothing")]) == 1
    assert "asv publish" in capsys.readouterr().err


def test_cli_runs_the_step(tmp_path, fake_npm, monkeypatch, capsys):
    npm, _ = fake_npm
    monkeypatch.setenv("PATH", f"{npm.parent}{os.pathsep}{os.environ['PATH']}")
    html_dir = _site(tmp_path)
    assert cli(["dashboard", "--html-dir", str(html_dir), "--cache-dir", str(tmp_path / "c")]) == 0
    assert "asv preview" in capsys.readouterr().out
    assert dashboard.external_urls((html_dir / "index.html").read_text()) == []


def test_python_m_fastbp_dashboard_help():
    out = subprocess.run([sys.executable, "-m", "fastbp", "dashboard", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "--html-dir" in out and "npm" in out
