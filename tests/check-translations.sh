#!/usr/bin/env bash
# Every string Lode ships has a French translation: extract the strings from
# the sources listed in po/POTFILES.in, merge them with po/fr.po, and fail if
# any is untranslated or fuzzy, or if fr.po does not compile.
set -euo pipefail
src=${1:?source root}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$src"
xgettext --from-code=UTF-8 --keyword=_ --keyword=N_ --keyword=C_:1c,2 \
  --keyword=g_dngettext:2,3 --add-comments=Translators \
  --files-from=po/POTFILES.in --output="$tmp/lode.pot" 2>"$tmp/xgettext.log" || {
    cat "$tmp/xgettext.log" >&2; exit 1; }
msgmerge --quiet --no-fuzzy-matching po/fr.po "$tmp/lode.pot" -o "$tmp/fr.po"
msgfmt --check --output-file=/dev/null po/fr.po
untranslated=$(msgattrib --untranslated --no-obsolete "$tmp/fr.po" | grep -c '^msgid ' || true)
fuzzy=$(msgattrib --only-fuzzy --no-obsolete "$tmp/fr.po" | grep -c '^msgid ' || true)
# msgattrib output has the header entry (msgid "") when anything matched.
[ "$untranslated" -gt 0 ] && untranslated=$((untranslated - 1))
[ "$fuzzy" -gt 0 ] && fuzzy=$((fuzzy - 1))
if [ "$untranslated" -ne 0 ] || [ "$fuzzy" -ne 0 ]; then
  echo "po/fr.po: $untranslated untranslated and $fuzzy fuzzy strings:" >&2
  msgattrib --untranslated --no-obsolete "$tmp/fr.po" | grep -A1 '^msgid ' | head -40 >&2 || true
  exit 1
fi
total=$(grep -c '^msgid ' "$tmp/lode.pot")
echo "po/fr.po translates all $((total - 1)) strings"
