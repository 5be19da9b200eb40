"""`qa`: the command line. Thin: parses, calls the public face, prints in French.

Exit codes: 0 success, 1 error (message on stderr; `qa index status`: a damaged index), 2 usage error.
Heavy libraries (torch, faiss, Gradio) load on first use inside qa, so `qa --help` answers at once.
"""

from __future__ import annotations

import argparse
import gettext
import logging
import os
import sys
from pathlib import Path

from qa.assistant import assistant
from qa.chunking import Passage
from qa.errors import QAError, build_command, french_message
from qa.evaluate import evaluate_answers, evaluate_piaf, evaluate_report, format_table
from qa.index import build_index, index_status
from qa.terminal import clean, configure_output, json_text, report
from qa.wording import RELEVANCE_LABELS, format_date, percent, quoted

USAGE_ERROR = 2
LOCALE = Path(__file__).parent / "locale"  # argparse's own words in French (locale/fr/LC_MESSAGES/qa.po)


def whole_number(text: str) -> int:
    """An integer argument, refused in French (argparse would name the type «int»)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"nombre entier attendu, reçu {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    # argparse writes «usage:», its headings and its errors through gettext's current domain: this
    # package's French catalog, whatever the terminal's locale (gettext reads the language from LANGUAGE).
    gettext.bindtextdomain("qa", LOCALE)
    gettext.textdomain("qa")
    os.environ["LANGUAGE"] = "fr"
    parser = build_parser()
    args = parser.parse_args(argv)
    # The engine logs in English for developers; users read the CLI's French lines instead.
    configure_output(logging.DEBUG if args.debug else logging.ERROR)
    if not args.debug:  # transformers draws a progress bar at each model load: not for users
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    handlers = {
        ("index", "build"): _build,
        ("index", "status"): _status,
        ("ask", None): _ask,
        ("serve", None): _serve,
        ("eval", "piaf"): lambda a: _print_table(format_table(evaluate_piaf(a.path, workdir=a.workdir, limit=a.limit))),
        ("eval", "report"): lambda a: _print_table(format_table(evaluate_report(a.path, index=a.index))),
        ("eval", "answers"): lambda a: _print_table(evaluate_answers(
            a.piaf, sets=a.sets, dev=a.dev, corpus=a.corpus, workdir=a.workdir, follow_ups=a.follow_ups, half=a.half)),
    }
    key = (args.command, getattr(args, "index_command", None) or getattr(args, "eval_command", None))
    handler = handlers.get(key)
    if handler is None:
        parser.print_help(sys.stderr)
        return USAGE_ERROR

    try:
        return handler(args)
    except QAError as exc:
        return _fail(args, french_message(exc), exc)
    except OSError as exc:
        where = f" : {exc.filename}" if exc.filename else ""
        return _fail(args, f"fichier ou dossier inaccessible{where} ({exc.strerror or exc}).", exc)
    except KeyboardInterrupt as exc:
        return _fail(args, "Interrompu.", exc)


def _fail(args: argparse.Namespace, message: str, exc: BaseException) -> int:
    """One French line on stderr (the engine's English details only with --debug)."""
    print(f"Erreur : {clean(message)}", file=sys.stderr)
    if args.debug:
        raise exc
    return 1


def _build(args: argparse.Namespace) -> int:
    report()  # each long step of a first run says what it does
    print(f"Indexation de {clean(args.corpus)} …", file=sys.stderr)
    summary = build_index(args.corpus, args.index, model=args.model, full=args.full, dense=args.dense,
                          show_progress=sys.stderr.isatty(), workers=args.workers, ray_address=args.ray_address)
    for path, reason in summary.skipped:
        print(f"Ignoré : {clean(path)} ({clean(reason)})", file=sys.stderr)
    if summary.full_reason:
        print(f"Tout est réencodé : {clean(summary.full_reason)}.", file=sys.stderr)
    print(f"Documents : {len(summary.added)} ajouté(s), {len(summary.changed)} modifié(s), "
          f"{len(summary.removed)} supprimé(s), {len(summary.reused)} réutilisé(s) sans réencodage, "
          f"{len(summary.skipped)} ignoré(s).")
    print(f"Index prêt : {summary.documents} document(s), {summary.passages} passages "
          f"({summary.embedded_passages} encodés), {summary.sentences} phrases, index vectoriel {summary.dense}, "
          f"modèle {clean(summary.model)}, en {summary.seconds:.1f} s.")
    return 0


def _status(args: argparse.Namespace) -> int:
    status = index_status(args.index, args.corpus)  # the manifest and the files' checksums; never the vectors
    print(f"Index : {clean(status.build)}")
    print(f"Construit le {clean(format_date(status.created))} — {len(status.documents)} document(s), "
          f"{status.passages} passages")
    print(f"Modèle : {clean(status.model)} (dimension {status.dimension}), index vectoriel {clean(status.dense)}")
    for doc in status.documents:
        print(f"  {clean(doc.doc)} — {clean(doc.title)} ({doc.passages} passages)")
    for path, reason in status.skipped:
        print(f"  ignoré : {clean(path)} ({clean(reason)})")
    if status.damaged:  # refused on load whatever the corpus: say so first, and fail
        print(f"État : endommagé — relancez : {build_command(args.index)}")
        for name, problem in status.damaged:
            print(f"  {clean(name)} : {clean(problem)}")
        return 1
    fresh = status.freshness
    if not fresh.stale:
        print("État : à jour")
        return 0
    print(f"État : périmé — relancez : {build_command(args.index)}")
    for label, docs in (("ajouté", fresh.added), ("modifié", fresh.changed), ("supprimé", fresh.removed)):
        for doc in docs:
            print(f"  {label} : {clean(doc)}")
    if fresh.model_changed:
        print("  le modèle a changé depuis la construction")
    if fresh.settings_changed:
        print("  les réglages de découpage ou d'analyse ont changé (nouvelle version de qa)")
    return 0


def _ask(args: argparse.Namespace) -> int:
    """`qa ask`: the outcome, the confidence, the quoted sentence (or the no-answer message), then the
    passages, through `qa.ask` like the app and the API, so every face gives the same answer."""
    if args.mode != "hybrid":
        return _ask_retrieval_only(args)
    answer = assistant(args.index).ask(args.question, k=args.k, docs=args.doc)
    _warn_if_stale(answer.stale, args.index)
    if args.json:
        print(json_text(answer.to_dict()))
        return 0

    print(answer.label)
    if answer.confidence is None:
        print(f"Confiance : non calibrée (règle par défaut du modèle {clean(answer.model)})")
    else:
        print(f"Confiance : {percent(answer.confidence)}")
    print(clean(answer.message if answer.sentence is None else quoted(answer.sentence.text), newlines=True))
    print()
    if not answer.passages:
        print("Aucun passage trouvé.")
        return 0
    print("Passages les plus proches (sans réponse certaine) :" if answer.abstained else "Sources :")
    quote_rank = None if answer.passage is None or answer.sentence is None else answer.passage.rank
    for p, value, key in zip(answer.passages, answer.relevance, answer.relevance_levels, strict=True):
        level = RELEVANCE_LABELS[key] + (f" ({percent(value)})" if value is not None else "")
        # only the quoted sentence is highlighted: nothing else claims to answer
        _print_passage(p, f" · {level}", highlight=p.rank == quote_rank)
    return 0


def _ask_retrieval_only(args: argparse.Namespace) -> int:
    """The hidden `--mode dense|bm25` debug path: one retrieval arm's ranking, no answer decided."""
    engine = assistant(args.index)
    passages = engine.retrieve(args.question, k=args.k, mode=args.mode, docs=args.doc)
    _warn_if_stale(engine.index.freshness.stale, args.index)
    if args.json:
        print(json_text([p.to_dict() for p in passages]))
        return 0
    if not passages:
        print("Aucun passage trouvé.")
    for p in passages:
        _print_passage(p, "", highlight=True)
    return 0


def _print_passage(p: Passage, level: str, *, highlight: bool) -> None:
    """A passage of `qa ask`: rank, title and section, where it is, its score, then its text."""
    where = f"{clean(p.doc)}, caractères {p.start}–{p.end}" + (f", page {p.page}" if p.page else "")
    print(f"[{p.rank}] {clean(p.title)} — {clean(p.section or '(sans titre de section)')}")
    print(f"    {where} · score {p.score:.3f}{level}")
    text = _highlight(p.text, *p.sentence_span(), sys.stdout.isatty()) if highlight else clean(p.text, newlines=True)
    print(f"    {text}\n")


def _warn_if_stale(stale: bool, index: str) -> None:
    """Answers come from the index as built: say so on stderr when the corpus has moved on since."""
    if stale:
        print("Attention : l'index est périmé (corpus, modèle ou réglages changés) ; relancez : "
              + build_command(index), file=sys.stderr)


def _highlight(text: str, start: int, end: int, tty: bool) -> str:
    """The passage with its sentence in bold yellow (`**` around it off a terminal): the document's text
    is cleaned piece by piece, then the colours are added, so only the CLI's own escapes reach the terminal."""
    left, right = ("\033[1;33m", "\033[0m") if tty else ("**", "**")
    before, inside, after = (clean(part, newlines=True) for part in (text[:start], text[start:end], text[end:]))
    return f"{before}{left}{inside}{right}{after}"


def _serve(args: argparse.Namespace) -> int:
    from ui.serving import IndexBuildFailed, serve  # lazy: Gradio loads only for `qa serve`

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"Attention : l'assistant sera joignable depuis le réseau ({args.host}), sans authentification.",
              file=sys.stderr)
    try:
        serve(host=args.host, port=args.port, corpus=args.corpus, index=args.index)
    except IndexBuildFailed as exc:  # the build's own process has said why
        return exc.status
    return 0


def _print_table(table: str) -> int:
    """`qa eval`'s Markdown table on stdout."""
    print(clean(table, newlines=True))
    return 0


def add_index_option(parser: argparse.ArgumentParser) -> None:
    """--index, the same for every command that reads or writes an index."""
    parser.add_argument("--index", default="index", help="dossier de l'index (défaut : index)")


def build_parser() -> argparse.ArgumentParser:
    """The `qa` command's arguments."""
    parser = argparse.ArgumentParser(prog="qa", description="Questions-réponses en français sur des rapports, "
                                     "avec citations exactes.")
    parser.add_argument("--debug", action="store_true", help="afficher les détails techniques des erreurs")
    sub = parser.add_subparsers(dest="command", metavar="COMMANDE")

    index = sub.add_parser("index", help="construire ou vérifier l'index")
    isub = index.add_subparsers(dest="index_command", metavar="ACTION")
    build = isub.add_parser("build", help="indexer les documents du corpus")
    build.add_argument("--corpus", default="corpus", help="dossier des documents (défaut : corpus)")
    add_index_option(build)
    build.add_argument("--model", default=None, help="modèle sentence-transformers (nom ou chemin)")
    build.add_argument("--full", action="store_true", help="tout réencoder, même les documents inchangés "
                       "(défaut : seulement les nouveaux et modifiés)")
    build.add_argument("--workers", type=whole_number, default=None,
                       help="encoder sur N workers Ray (extra « cluster » ; défaut : un seul processus)")
    build.add_argument("--ray-address", default=None, help="adresse d'un cluster Ray existant (extra « cluster »)")
    build.add_argument("--dense", choices=["auto", "flat", "ivf"], default="auto",
                       help="index vectoriel : exact (flat), approché (ivf) ou selon la taille (auto, défaut)")
    status = isub.add_parser("status", help="l'index est-il à jour ?")
    add_index_option(status)
    status.add_argument("--corpus", default=None, help="dossier des documents (défaut : celui de l'index)")

    ask = sub.add_parser("ask", help="poser une question")
    ask.add_argument("question", help="la question, en français")
    ask.add_argument("-k", type=whole_number, default=3, help="nombre de passages (défaut : 3)")
    add_index_option(ask)
    ask.add_argument("--json", action="store_true", help="sortie JSON pour les programmes")
    ask.add_argument("--doc", action="append", default=None, metavar="DOCUMENT",
                     help="chercher seulement dans ce document (chemin relatif au corpus ; répétable)")
    ask.add_argument("--mode", choices=["hybrid", "dense", "bm25"], default="hybrid", help=argparse.SUPPRESS)

    serve = sub.add_parser("serve", help="ouvrir l'assistant dans le navigateur")
    serve.add_argument("--host", default="127.0.0.1", help="adresse d'écoute (défaut : 127.0.0.1, cette machine seule)")
    serve.add_argument("--port", type=whole_number, default=7860, help="port (défaut : 7860)")
    serve.add_argument("--corpus", default=None, help="dossier des documents (défaut : celui de l'index, sinon corpus)")
    add_index_option(serve)

    ev = sub.add_parser("eval", help="mesurer la qualité et la vitesse")
    esub = ev.add_subparsers(dest="eval_command", metavar="JEU")
    piaf = esub.add_parser("piaf", help="questions PIAF (fichier JSON au format SQuAD)")
    piaf.add_argument("path", help="chemin de piaf-dev.json")
    piaf.add_argument("--workdir", default=None, help="dossier de travail (défaut : temporaire)")
    piaf.add_argument("--limit", type=whole_number, default=None, help="n'utiliser que les N premiers articles")
    answers = esub.add_parser("answers", help="réponses de qa.ask : couverture, précision, calibration")
    answers.add_argument("piaf", help="chemin de piaf-dev.json")
    answers.add_argument("--sets", default=None,
                         help="questions sur le rapport : dans le sujet, voisines, hors sujet (mali-answers.json)")
    answers.add_argument("--dev", default=None, help="questions du rapport au format mali-dev.json (facultatif)")
    answers.add_argument("--half", choices=["tune", "check", "all"], default="check",
                         help="moitié des questions : réglage (tune), contrôle (check, défaut) ou toutes (all)")
    answers.add_argument("--follow-ups", default=None, help="questions de suivi supplémentaires (JSON)")
    answers.add_argument("--corpus", default="corpus", help="dossier du rapport (défaut : corpus)")
    answers.add_argument("--workdir", default=None, help="dossier de travail (défaut : temporaire)")
    mali = esub.add_parser("report", help="questions sur le rapport (mali-dev.json)")
    mali.add_argument("path", help="chemin de mali-dev.json")
    add_index_option(mali)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
