"""Rewrite a `docker save` archive so kind reads every image tag in it.

kind v0.33's `build node-image --type file` reads an archive's tags from whichever of
`repositories` or `manifest.json` comes first; from `manifest.json` it takes only the first
image's tags, and pulls the images whose tags it did not see (which fails offline). From
`repositories` it takes them all. So: `repositories` first, then `manifest.json`, then the
layers. Docker Hub names are written in full
(`docker.io/kindest/...`), as kind compares them with the full names it would pull.

usage: archive_repositories_first.py IN.tar OUT.tar
"""

import io
import json
import sys
import tarfile


def full_name(repo: str) -> str:
    first = repo.split("/", 1)[0]
    if "/" in repo and ("." in first or ":" in first or first == "localhost"):
        return repo
    return "docker.io/" + (repo if "/" in repo else "library/" + repo)


def full_tag(ref: str) -> str:
    repo, _, tag = ref.rpartition(":")
    return f"{full_name(repo)}:{tag}"


def main(src: str, dst: str) -> None:
    with tarfile.open(src) as tin:
        members = tin.getmembers()
        repos = json.load(tin.extractfile("repositories"))  # type: ignore[arg-type]
        manifest = json.load(tin.extractfile("manifest.json"))  # type: ignore[arg-type]
        repos = {full_name(r): tags for r, tags in repos.items()}
        for entry in manifest:
            entry["RepoTags"] = [full_tag(t) for t in entry.get("RepoTags") or []]
        with tarfile.open(dst, "w") as tout:
            for name, obj in (("repositories", repos), ("manifest.json", manifest)):
                data = json.dumps(obj).encode()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o644
                tout.addfile(info, io.BytesIO(data))
            for m in members:
                if m.name in ("repositories", "manifest.json"):
                    continue
                tout.addfile(m, tin.extractfile(m) if m.isfile() else None)
    print(f"{dst}: {sorted(f'{r}:{t}' for r, tags in repos.items() for t in tags)}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
