"""The `prefrl` command line: `prefrl train ...`, `prefrl plot ...`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence


def _train_parser(sub: argparse._SubParsersAction) -> None:
    from prefrl.train import TrainConfig

    d = TrainConfig(env="", out="")
    p = sub.add_parser("train", help="train PPO/SAC on a learned (or the true) reward",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--env", help="Gymnasium env id, e.g. Hopper-v5 or prefrl/PointMass-v0")
    p.add_argument("--algo", default=d.algo, help="ppo or sac")
    p.add_argument("--teacher", default=d.teacher, help="oracle, noisy, mistake, myopic, skip, equal, christiano")
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
    p.add_argument("--threads", type=int, default=d.threads, help="torch threads")
    p.add_argument("--resume", metavar="DIR", help="continue the stopped run in DIR (other options are ignored)")
    p.add_argument("--overwrite", action="store_true", help="delete an earlier run in --out instead of refusing")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _cmd_train(args: argparse.Namespace) -> int:
    from prefrl.train import TrainConfig, resume, train

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
            threads=args.threads, progress=not args.no_progress,
        ), overwrite=args.overwrite)
    summary = {k: metrics[k] for k in ("env", "algo", "labels", "true_return", "learned_return",
                                       "pref_accuracy_heldout", "reward_correlation", "wall_seconds")}
    print(json.dumps(summary))
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from prefrl.plotting import plot_runs

    print(plot_runs(args.runs, args.out, title=args.title))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `prefrl` command."""
    parser = argparse.ArgumentParser(prog="prefrl", description="Preference-based RL on Gymnasium + Stable-Baselines3")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    p = sub.add_parser("plot", help="overlay learned- and true-reward curves of finished runs")
    p.add_argument("runs", nargs="+", metavar="DIR", help="run directories")
    p.add_argument("--out", required=True, help="output PNG file")
    p.add_argument("--title", default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: bad input ends with one clear line on stderr and exit status 2, not a traceback."""
    args = build_parser().parse_args(argv)
    handler = {"train": _cmd_train, "plot": _cmd_plot}[args.command]
    try:
        return handler(args)
    except (ValueError, OSError, TypeError) as exc:
        print(f"prefrl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"prefrl {args.command}: interrupted; labels gathered so far are saved (resume with --resume)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
