"""Write the Go module as a module proxy serves it: ``<out>/<module path>/@v/<version>.{zip,mod,info}``.

    python module_zip.py MODULE_DIR MODULE_PATH VERSION LICENSE OUT_DIR

The zip holds what a user of the module needs to build it: go.mod, the Go sources, the generated stubs
(gen/, made by ``make proto``) and the copy of the service config the coord package embeds, plus the
repository's LICENSE; never the vendor tree, the build caches or this offline tooling. Its entries are
named ``<module path>@<version>/<file>``, the layout of golang.org/x/mod/zip, so any GOPROXY (a file://
tree, Athens, Artifactory) can serve the directory as it is.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

# Top-level entries of the module directory that stay out of the published module.
EXCLUDED = {"vendor", "vendor.tmp", ".build", "dist", "offline", ".gitignore"}
# Fixed timestamps make the zip depend only on the files' contents.
EPOCH = (1980, 1, 1, 0, 0, 0)


def module_files(module_dir: Path) -> list[Path]:
    files = []
    for path in sorted(module_dir.rglob("*")):
        relative = path.relative_to(module_dir)
        if relative.parts[0] in EXCLUDED or not path.is_file():
            continue
        files.append(relative)
    return files


def main(argv: list[str]) -> int:
    if len(argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    module_dir, module_path, version, license_file, out = (
        Path(argv[1]),
        argv[2],
        argv[3],
        Path(argv[4]),
        Path(argv[5]),
    )
    files = module_files(module_dir)
    required = [Path("go.mod"), Path("coord/service_config.json")]
    missing = [str(f) for f in required if f not in files]
    if missing or not any(f.parts[0] == "gen" for f in files):
        print(f"module_zip: missing {missing or 'gen/'}; run `make proto` first", file=sys.stderr)
        return 1
    # Module paths with upper-case letters are escaped in proxy URLs ("!x"); this one has none.
    if module_path != module_path.lower():
        print("module_zip: upper-case module paths are not supported", file=sys.stderr)
        return 1
    at_v = out / module_path / "@v"
    at_v.mkdir(parents=True, exist_ok=True)
    prefix = f"{module_path}@{version}/"
    with zipfile.ZipFile(at_v / f"{version}.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for relative in [*files, Path("LICENSE")]:
            source = license_file if relative == Path("LICENSE") else module_dir / relative
            entry = zipfile.ZipInfo(prefix + relative.as_posix(), date_time=EPOCH)
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, source.read_bytes())
    (at_v / f"{version}.mod").write_bytes((module_dir / "go.mod").read_bytes())
    (at_v / f"{version}.info").write_text(json.dumps({"Version": version}) + "\n")
    (at_v / "list").write_text(version + "\n")
    print(f"{at_v / (version + '.zip')}: {len(files) + 1} files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
