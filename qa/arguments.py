"""The `qa` command's arguments, parsed and explained in French: argparse's own words too.

argparse writes «usage:», «positional arguments», «show this help message and exit» and its usage
errors in English. `FrenchParser` (every sub-command's parser is one) says them in French: its help
formatter names the sections, its own -h/--help replaces argparse's, and `error` translates argparse's
messages (a required argument missing, an unknown command or option, a bad value) before it prints
the usage and exits with status 2. A message it does not know stays as argparse wrote it.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import NoReturn

SECTIONS = {"positional arguments": "arguments", "options": "options", "optional arguments": "options"}
ERRORS = [  # argparse's messages (Python 3.11 to 3.13), most specific first
    (r"argument (.+?): invalid choice: (.+?) \(choose from (.+)\)",
     r"argument \1 : choix invalide : \2 (au choix : \3)"),
    (r"invalid choice: (.+?) \(choose from (.+)\)", r"choix invalide : \1 (au choix : \2)"),
    (r"the following arguments are required: (.+)", r"argument(s) obligatoire(s) manquant(s) : \1"),
    (r"unrecognized arguments: (.+)", r"argument(s) non reconnu(s) : \1"),
    (r"argument (.+?): expected one argument", r"l'option \1 attend une valeur"),
    (r"argument (.+?): expected at most one argument", r"l'option \1 attend au plus une valeur"),
    (r"argument (.+?): expected at least one argument", r"l'option \1 attend au moins une valeur"),
    (r"argument (.+?): expected (\d+) arguments?", r"l'option \1 attend \2 valeur(s)"),
    (r"argument (.+?): invalid int value: (.+)", r"argument \1 : nombre entier attendu, reçu \2"),
    (r"argument (.+?): invalid (\w+) value: (.+)", r"argument \1 : valeur invalide (\2) : \3"),
    (r"argument (.+?): not allowed with argument (.+)", r"argument \1 : incompatible avec \2"),
    (r"ambiguous option: (.+?) could match (.+)", r"option ambiguë : \1 peut désigner \2"),
    (r"one of the arguments (.+) is required", r"l'un des arguments \1 est obligatoire"),
    (r"argument (.+?): ignored explicit argument (.+)", r"argument \1 : valeur inattendue \2"),
]


def french_error(message: str) -> str:
    """argparse's usage error in French (unchanged when unknown)."""
    for pattern, french in ERRORS:
        if re.fullmatch(pattern, message):
            return re.sub(pattern, french, message)
    return message


class FrenchFormatter(argparse.HelpFormatter):
    """argparse's help layout, with French headings."""

    def add_usage(self, usage, actions, groups, prefix=None):  # noqa: ANN001 - argparse's signature
        super().add_usage(usage, actions, groups, "utilisation : " if prefix is None else prefix)

    def start_section(self, heading):  # noqa: ANN001 - argparse's signature
        super().start_section(SECTIONS.get(heading, heading))


class FrenchParser(argparse.ArgumentParser):
    """An ArgumentParser that speaks French, and makes its sub-commands' parsers alike."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - argparse's signature
        kwargs.setdefault("formatter_class", FrenchFormatter)
        wants_help = kwargs.pop("add_help", True)
        super().__init__(*args, add_help=False, **kwargs)
        if wants_help:
            self.add_argument("-h", "--help", action="help", default=argparse.SUPPRESS,
                              help="afficher cette aide et quitter")

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog} : erreur : {french_error(message)}\n")


def add_index_option(parser: argparse.ArgumentParser) -> None:
    """--index, the same for every command that reads or writes an index."""
    parser.add_argument("--index", default="index", help="dossier de l'index (défaut : index)")


def build_parser() -> FrenchParser:
    """The `qa` command's arguments."""
    parser = FrenchParser(
        prog="qa",
        description="Questions-réponses en français sur des rapports, avec citations exactes.",
    )
    parser.add_argument("--debug", action="store_true", help="afficher les détails techniques des erreurs")
    sub = parser.add_subparsers(dest="command", metavar="COMMANDE")

    index = sub.add_parser("index", help="construire ou vérifier l'index")
    isub = index.add_subparsers(dest="index_command", metavar="ACTION")
    build = isub.add_parser("build", help="indexer les documents du corpus")
    build.add_argument("--corpus", default="corpus", help="dossier des documents (défaut : corpus)")
    add_index_option(build)
    build.add_argument("--model", default=None, help="modèle sentence-transformers (nom ou chemin)")
    build.add_argument("--full", action="store_true",
                       help="tout réencoder, même les documents inchangés "
                            "(défaut : seulement les nouveaux et modifiés)")
    build.add_argument("--workers", type=int, default=None,
                       help="encoder sur N workers Ray (extra « cluster » ; défaut : un seul processus)")
    build.add_argument("--ray-address", default=None, help="adresse d'un cluster Ray existant (extra « cluster »)")
    build.add_argument("--dense", choices=["auto", "flat", "ivf"], default="auto",
                       help="index vectoriel : exact (flat), approché (ivf) ou selon la taille (auto, défaut)")
    status = isub.add_parser("status", help="l'index est-il à jour ?")
    add_index_option(status)
    status.add_argument("--corpus", default=None, help="dossier des documents (défaut : celui de l'index)")

    ask = sub.add_parser("ask", help="poser une question")
    ask.add_argument("question", help="la question, en français")
    ask.add_argument("-k", type=int, default=3, help="nombre de passages (défaut : 3)")
    add_index_option(ask)
    ask.add_argument("--json", action="store_true", help="sortie JSON pour les programmes")
    ask.add_argument("--doc", action="append", default=None, metavar="DOCUMENT",
                     help="chercher seulement dans ce document (chemin relatif au corpus ; répétable)")
    ask.add_argument("--mode", choices=["hybrid", "dense", "bm25"], default="hybrid", help=argparse.SUPPRESS)

    serve = sub.add_parser("serve", help="ouvrir l'assistant dans le navigateur")
    serve.add_argument("--host", default="127.0.0.1", help="adresse d'écoute (défaut : 127.0.0.1, cette machine seule)")
    serve.add_argument("--port", type=int, default=7860, help="port (défaut : 7860)")
    serve.add_argument("--corpus", default=None,
                       help="dossier des documents (défaut : celui de l'index, sinon corpus)")
    add_index_option(serve)

    ev = sub.add_parser("eval", help="mesurer la qualité et la vitesse")
    esub = ev.add_subparsers(dest="eval_command", metavar="JEU")
    piaf = esub.add_parser("piaf", help="questions PIAF (fichier JSON au format SQuAD)")
    piaf.add_argument("path", help="chemin de piaf-dev.json")
    piaf.add_argument("--workdir", default=None, help="dossier de travail (défaut : temporaire)")
    piaf.add_argument("--limit", type=int, default=None, help="n'utiliser que les N premiers articles")
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
