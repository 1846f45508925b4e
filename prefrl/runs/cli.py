"""The `prefrl` command line: `prefrl train|bc|plot ...`, `prefrl demos record|info ...`,
`prefrl label serve|status|export|import ...`, `prefrl llm make-task|train|eval ...`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence


def _train_parser(sub: argparse._SubParsersAction) -> None:
    from prefrl.runs.train import TrainConfig

    d = TrainConfig(env="", out="")
    p = sub.add_parser("train", help="train PPO/SAC on a learned (or the true) reward",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--env", help="Gymnasium env id, e.g. Hopper-v5 or prefrl/PointMass-v0")
    p.add_argument("--algo", default=d.algo, help="ppo or sac")
    p.add_argument("--teacher", default=d.teacher,
                   help="oracle, noisy, mistake, myopic, skip, equal, christiano, or human (people, through "
                        "`prefrl label serve`)")
    p.add_argument("--labels", type=int, default=d.labels, help="label budget (number of queries)")
    p.add_argument("--steps", type=int, default=d.steps, help="env steps of policy training")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", help="run directory")
    p.add_argument("--reward", default=d.reward, help="learned, or true for the true-reward baseline")
    p.add_argument("--sampler", default=d.sampler,
                   help="uniform, disagreement, entropy, kcenter, disagreement_kcenter, entropy_kcenter")
    p.add_argument("--ensemble", type=int, default=d.ensemble, help="reward ensemble members")
    p.add_argument("--segment-len", type=int, default=d.segment_len, help="steps per compared segment")
    p.add_argument("--n-envs", type=int, default=d.n_envs, help="parallel envs")
    p.add_argument("--num-queries", type=int, default=d.num_queries, help="reward updates over the run")
    p.add_argument("--eval-episodes", type=int, default=d.eval_episodes, help="episodes in the final evaluation")
    p.add_argument("--evals", type=int, default=d.evals, help="evaluations during the run (the history)")
    p.add_argument("--pretrain-steps", type=int, default=d.pretrain_steps,
                   help="SAC only: PEBBLE unsupervised pre-training steps before the first labels")
    p.add_argument("--min-labels", type=int, default=d.min_labels,
                   help="--teacher human: wait for this many answers before the first reward update")
    p.add_argument("--serve", action="store_true", help="--teacher human: serve the labelling page from this process")
    p.add_argument("--port", type=int, default=d.port, help="port of --serve (on 127.0.0.1)")
    p.add_argument("--demos", default=None, metavar="FILE",
                   help="demonstrations (npz, HDF5 or minari:ID): trains the AIHF joint reward (IRL with --labels 0)")
    p.add_argument("--demo-episodes", type=int, default=None, help="use only the first N episodes of --demos")
    p.add_argument("--demo-weight", type=float, default=d.demo_weight, help="AIHF weight W_D of the demonstration term")
    p.add_argument("--pref-weight", type=float, default=d.pref_weight, help="AIHF weight W_P of the preference term")
    p.add_argument("--threads", type=int, default=d.threads, help="torch threads")
    p.add_argument("--resume", metavar="DIR", help="continue the stopped run in DIR (other options are ignored)")
    p.add_argument("--overwrite", action="store_true", help="delete an earlier run in --out instead of refusing")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _cmd_train(args: argparse.Namespace) -> int:
    from prefrl.runs.train import TrainConfig, resume, train

    if args.resume:
        metrics = resume(args.resume, progress=not args.no_progress)
    else:
        if not args.env or not args.out:
            raise ValueError("prefrl train needs --env and --out (or --resume DIR)")
        metrics = train(TrainConfig(
            env=args.env, out=args.out, algo=args.algo, teacher=args.teacher, labels=args.labels, steps=args.steps,
            seed=args.seed, reward=args.reward, sampler=args.sampler, ensemble=args.ensemble,
            segment_len=args.segment_len, n_envs=args.n_envs, num_queries=args.num_queries,
            eval_episodes=args.eval_episodes, evals=args.evals, pretrain_steps=args.pretrain_steps,
            min_labels=args.min_labels, serve=args.serve, port=args.port,
            demos=args.demos, demo_episodes=args.demo_episodes, demo_weight=args.demo_weight,
            pref_weight=args.pref_weight, threads=args.threads, progress=not args.no_progress,
        ), overwrite=args.overwrite)
    summary = {k: metrics.get(k) for k in ("env", "algo", "method", "labels", "demos", "true_return", "learned_return",
                                       "pref_accuracy_heldout", "reward_correlation", "wall_seconds")}
    print(json.dumps(summary))
    return 0


def _bc_parser(sub: argparse._SubParsersAction) -> None:
    from prefrl.runs.bc import BCConfig

    d = BCConfig(env="", demos="", out="")
    p = sub.add_parser("bc", help="behaviour cloning from demonstrations into an SB3 PPO policy",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--demos", required=True, metavar="FILE", help="demonstrations (npz, HDF5 or minari:ID)")
    p.add_argument("--env", required=True, help="Gymnasium env id the demonstrations come from")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--demo-episodes", type=int, default=None, help="use only the first N episodes")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--epochs", type=int, default=d.epochs, help="most passes over the demonstrations")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--eval-episodes", type=int, default=d.eval_episodes, help="episodes of the true-reward evaluation")
    p.add_argument("--overwrite", action="store_true", help="delete an earlier run in --out instead of refusing")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _cmd_bc(args: argparse.Namespace) -> int:
    from prefrl.runs.bc import BCConfig, behaviour_clone

    metrics = behaviour_clone(BCConfig(
        env=args.env, demos=args.demos, out=args.out, demo_episodes=args.demo_episodes, seed=args.seed,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, eval_episodes=args.eval_episodes,
        progress=not args.no_progress,
    ), overwrite=args.overwrite)
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
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    i = dsub.add_parser("info", help="episodes, transitions and true return of a demonstration file")
    i.add_argument("file", help="npz, HDF5 or minari:ID")
    i.add_argument("--env", default=None, help="also check the demonstrations fit this env's spaces")


def _cmd_demos(args: argparse.Namespace) -> int:
    from prefrl.core.demos import Demonstrations, load_demos_for_env
    from prefrl.sb3.policies import record_demos

    if args.demos_command == "record":
        demos = record_demos(args.env, args.policy, args.episodes, seed=args.seed, deterministic=not args.stochastic,
                             progress=not args.no_progress)
        demos.save(args.out)
        print(json.dumps({"out": args.out, **demos.summary()}))
    elif args.env:
        from prefrl.runs.train import check_env_id

        check_env_id(args.env)
        print(json.dumps(load_demos_for_env(args.file, args.env).summary()))
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
    p = sub.add_parser("llm", help="preference fine-tuning of causal language models (pip install 'prefrl[llm]')")
    lsub = p.add_subparsers(dest="llm_command", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter
    mk = lsub.add_parser("make-task", help="a synthetic task: tiny reference model, preference pairs, demonstrations",
                         formatter_class=fmt)
    mk.add_argument("name", help="sentiment or sorting")
    mk.add_argument("--out", required=True, metavar="DIR")
    mk.add_argument("--prefs", type=int, default=256, help="preference pairs")
    mk.add_argument("--demos", type=int, default=64, help="demonstrations")
    mk.add_argument("--seed", type=int, default=0)
    mk.add_argument("--pretrain-steps", type=int, default=600, help="steps of pretraining the reference model")
    tr = lsub.add_parser("train", help="fine-tune a local causal LM from preferences (and demonstrations)",
                         formatter_class=fmt)
    tr.add_argument("--model", required=True, metavar="PATH", help="a save_pretrained directory (nothing is downloaded)")
    tr.add_argument("--prefs", metavar="FILE", help="JSONL (or a saved HF dataset) with prompt, chosen, rejected")
    tr.add_argument("--demos", metavar="FILE", help="JSONL (or a saved HF dataset) with prompt, completion")
    tr.add_argument("--method", default="dpo", help="sft, dpo, rpo, aihf or aihf-dpo")
    tr.add_argument("--loss", default="sigmoid", help="DPO loss: sigmoid, ipo, hinge or robust")
    tr.add_argument("--out", required=True, metavar="DIR")
    for name, default in (("beta", 0.1), ("alpha", 1.0), ("pref-weight", 1.0), ("demo-weight", 1.0), ("lr", 1e-4)):
        tr.add_argument(f"--{name}", type=float, default=default)
    tr.add_argument("--epochs", type=int, default=10)
    tr.add_argument("--batch-size", type=int, default=16)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--no-progress", action="store_true")
    ev = lsub.add_parser("eval", help="mean true reward of sampled completions and KL to the reference model",
                         formatter_class=fmt)
    ev.add_argument("--model", required=True, metavar="DIR")
    ev.add_argument("--task", required=True, help="sentiment or sorting")
    ev.add_argument("--reference", metavar="DIR", help="reference model (default: the one the model was trained from)")
    ev.add_argument("--samples", type=int, default=256)
    ev.add_argument("--seed", type=int, default=123)


def _cmd_llm(args: argparse.Namespace) -> int:
    from prefrl.llm import tasks
    from prefrl.llm.train import LLMTrainConfig, load_model, train_llm

    if args.llm_command == "make-task":
        tasks.get_task(args.name)
        print(json.dumps(tasks.make_task(args.name, args.out, prefs=args.prefs, demos=args.demos, seed=args.seed,
                                         pretrain_steps=args.pretrain_steps, progress=True)))
    elif args.llm_command == "train":
        result = train_llm(LLMTrainConfig(
            model=args.model, out=args.out, method=args.method, prefs=args.prefs, demos=args.demos, loss=args.loss,
            beta=args.beta, alpha=args.alpha, pref_weight=args.pref_weight, demo_weight=args.demo_weight, lr=args.lr,
            epochs=args.epochs, batch_size=args.batch_size, seed=args.seed), progress=not args.no_progress)
        print(json.dumps(result))
    else:
        from pathlib import Path

        task = tasks.get_task(args.task)
        reference = args.reference
        if reference is None:
            log = Path(args.model) / "train_log.json"
            if not log.is_file():
                raise ValueError(f"{args.model} has no train_log.json naming its reference model: pass --reference DIR")
            reference = json.loads(log.read_text())["reference"]
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `prefrl` command."""
    parser = argparse.ArgumentParser(prog="prefrl", description="Preference-based RL on Gymnasium + Stable-Baselines3")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _bc_parser(sub)
    _demos_parser(sub)
    _label_parser(sub)
    _llm_parser(sub)
    p = sub.add_parser("plot", help="overlay learned- and true-reward curves of finished runs")
    p.add_argument("runs", nargs="+", metavar="DIR", help="run directories")
    p.add_argument("--out", required=True, help="output PNG file")
    p.add_argument("--title", default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: bad input ends with one clear line on stderr and exit status 2, not a traceback."""
    args = build_parser().parse_args(argv)
    handler = {"train": _cmd_train, "bc": _cmd_bc, "demos": _cmd_demos, "label": _cmd_label, "llm": _cmd_llm, "plot": _cmd_plot}[args.command]
    try:
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
