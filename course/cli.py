"""The `course` command: list, lab, check, claims, bench, doctor, readme."""
import argparse
import os
import subprocess
import sys

from course import catalog, registry


def cmd_list(args) -> int:
    """Families with their notebook and status; with a family, its papers and ops."""
    try:
        from course.notebooks import course_root
        nb_dir = course_root() / "notebooks"
    except FileNotFoundError:
        nb_dir = None
    families = [catalog.family(args.family)] if args.family else catalog.families()
    device = "cuda" if __import__("torch").cuda.is_available() else "cpu"
    for f in families:
        state = catalog.status(f, nb_dir)
        print(f"{f.number:>2} {f.id:<34} {state:<9} {f.notebook_name if state == 'notebook' else ''}")
        if args.family or args.papers:
            for p in f.papers:
                print(f"     [{p.priority}] {p.title}")
        for op in catalog.ops_of(f.id):
            here = [i.backend for i in op.impls if i.availability(device)[0]]
            print(f"     op {op.name:<14} backends {', '.join(op.backends)}; here: {', '.join(here)}")
    return 0


def cmd_lab(args) -> int:
    """Open JupyterLab at the course index.

    The process becomes jupyter (exec), so a signal sent to `course lab` reaches the server itself
    and no orphaned server is left behind.
    """
    from course.notebooks import course_root

    root = course_root()
    env = {**os.environ}
    env.setdefault("TRITON_INTERPRET", "0" if __import__("torch").cuda.is_available() else "1")
    command = [sys.executable, "-m", "jupyter", "lab", "notebooks/00_index.ipynb", *args.lab_args]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in command:
        command.append("--allow-root")  # containers and CI machines run as root
    print("starting:", " ".join(command), f"(in {root})", flush=True)
    if not hasattr(os, "execvpe"):
        return subprocess.call(command, cwd=root, env=env)
    os.chdir(root)
    os.execvpe(command[0], command, env)


def cmd_check(args) -> int:
    """Execute notebooks headless; print each one's wall time against its budget."""
    from tqdm.auto import tqdm

    from course.notebooks import course_root, execute, notebook_paths

    paths = notebook_paths(course_root())
    if args.family:
        f = catalog.family(args.family)
        paths = [p for p in paths if p.name == f.notebook_name]
        if not paths:
            print(f"family {f.id} has no notebook yet ({f.notebook_name})")
            return 1
    results = []
    for path in tqdm(paths, desc="notebooks"):
        results.append(execute(path, write=args.write))
    print(f"{'notebook':<40}{'seconds':>9}{'budget':>8}  result")
    for r in results:
        verdict = "ok" if r.ok else (f"error: {r.error}" if r.error else "OVER BUDGET")
        print(f"{r.path.name:<40}{r.seconds:>9.1f}{r.budget_s:>8.0f}  {verdict}")
    return 0 if all(r.ok for r in results) else 1


def cmd_claims(args) -> int:
    """Run the claims of one family (or all) on every seed; print each result and a table."""
    from tqdm.auto import tqdm

    from course import claims

    chosen = claims.of_family(catalog.package_of(catalog.family(args.family).id) or "") \
        if args.family else claims.all_claims()
    if args.family and not chosen:
        print(f"family {args.family!r} has no claims yet", file=sys.stderr)
        return 2
    jobs = [(c, s) for c in chosen for s in (args.seeds or c.seeds)]
    results = claims.Results(claims.run(c, s) for c, s in tqdm(jobs, desc="claims"))
    print(results)
    seeds = sorted({s for _, s in jobs})
    width = max([28] + [len(c.id) + 2 for c in chosen])
    print(f"\n{'claim':<{width}}{'kind':<15}{'reported':<17}" + "".join(f"{'seed ' + str(s):<12}" for s in seeds))
    by_key = {(r.claim.id, r.seed): r for r in results}
    surprises = 0
    for claim in chosen:
        row = f"{claim.id:<{width}}{claim.kind:<15}{claim.verdict:<17}"
        for seed in seeds:
            result = by_key.get((claim.id, seed))
            if result is None:
                row += f"{'-':<12}"
                continue
            surprise = result.holds != (seed in claim.held_on)
            surprises += surprise
            row += f"{('holds' if result.holds else 'fails') + ('!' if surprise else ''):<7}" \
                   f"{result.seconds:>4.1f}s "
        print(row)
    if surprises:
        print(f"{surprises} result(s) marked ! disagree with what the records report (held_on)",
              file=sys.stderr)
    return 1 if surprises else 0


def cmd_bench(args) -> int:
    """Time every backend of the ops; print a table; write benchmarks/results/<device>.json.

    The timing runs on the machine's own fastest code paths: where this process pinned the numerics
    (course.numerics), the command runs again in a process without the pins."""
    import torch

    from course import bench, numerics
    from course.notebooks import course_root

    names = None
    if args.op:
        names = [op.name for op in registry.all_ops() if args.op in (op.name, op.family)]
        if not names:
            print(f"course bench: no op or family {args.op!r}; ops: "
                  f"{', '.join(o.name for o in registry.all_ops())}", file=sys.stderr)
            return 2
    device = args.device or registry.default_device()
    if device == "cuda" and not torch.cuda.is_available():
        print("course bench: --device cuda needs a CUDA GPU, and torch sees none here "
              f"(torch {torch.__version__}); leave out --device to time the CPU", file=sys.stderr)
        return 2
    if numerics.SET_HERE:
        command = [sys.executable, "-m", "course.cli", *args.argv]
        return subprocess.call(command, env=numerics.native_environment())
    records, errors, written = [], [], set()
    for name in names or [op.name for op in registry.all_ops()]:
        timed = bench.run([name], device, min_seconds=args.min_seconds, errors=errors)
        records += timed
        if not args.no_write and timed:  # each op's records land as they come: a run cut off keeps them
            written.update(bench.write(timed, args.out or course_root()))
    print(bench.table(records))
    for path in sorted(written):
        print("wrote", path)
    for error in errors:
        print(f"course bench: FAILED {error}", file=sys.stderr)
    return 1 if errors else 0


def cmd_readme(args) -> int:
    """Print README.md with its generated tables refreshed; --write stores it."""
    from course import overview
    from course.notebooks import course_root

    root = course_root()
    path = root / "README.md"
    text = path.read_text(encoding="utf-8")
    fresh = overview.render_readme(text, overview.readme_sections(root))
    if args.write:
        path.write_text(fresh, encoding="utf-8")
        print(f"{'updated' if fresh != text else 'already current:'} {path}")
    else:
        print(fresh, end="")
    return 0


def cmd_doctor(args) -> int:
    from course import doctor

    return doctor.run()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="course", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("list", help="families, notebooks, papers, ops and the backends available here")
    s.add_argument("family", nargs="?", help="a family id, number or package (e.g. moe)")
    s.add_argument("--papers", action="store_true", help="list every family's papers")
    s.set_defaults(run=cmd_list)
    s = sub.add_parser("lab", help="open JupyterLab at notebooks/00_index.ipynb (other options "
                                   "are passed on to jupyter lab, e.g. --no-browser --port=8890)")
    s.set_defaults(run=cmd_lab)
    s = sub.add_parser("check", help="run notebooks headless against their time budgets")
    s.add_argument("family", nargs="?")
    s.add_argument("--write", action="store_true",
                   help="store the fresh outputs in the notebooks (to refresh the committed ones)")
    s.set_defaults(run=cmd_check)
    s = sub.add_parser("claims", help="run the papers' claims on every seed and print them")
    s.add_argument("family", nargs="?", help="a family id, number or package (e.g. moe)")
    s.add_argument("--seeds", type=lambda text: [int(v) for v in text.split(",")],
                   help="comma-separated seeds instead of each claim's own (e.g. 0,1,2)")
    s.set_defaults(run=cmd_claims)
    s = sub.add_parser("bench", help="benchmark the ops' backends and write the records")
    s.add_argument("op", nargs="?", help="an op (moe.dispatch) or a family (moe)")
    s.add_argument("--device", choices=["cpu", "cuda"])
    s.add_argument("--out", type=__import__("pathlib").Path, help="folder that holds benchmarks/")
    s.add_argument("--no-write", action="store_true")
    s.add_argument("--min-seconds", type=float, default=0.3,
                   help="time each backend of a case for at least this long (interleaved rounds)")
    s.set_defaults(run=cmd_bench)
    s = sub.add_parser("readme", help="README.md with its tables generated from the checkout")
    s.add_argument("--write", action="store_true", help="store it in README.md")
    s.set_defaults(run=cmd_readme)
    s = sub.add_parser("doctor", help="check this machine and say how to fix what is missing")
    s.set_defaults(run=cmd_doctor)
    return p


def main(argv=None) -> int:
    p = parser()
    args, extra = p.parse_known_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if extra and args.command != "lab":
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    args.lab_args = extra
    try:
        return args.run(args)
    except (FileNotFoundError, KeyError) as error:  # no checkout here, an unknown family
        print(f"course {args.command}: {error.args[0] if error.args else error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
