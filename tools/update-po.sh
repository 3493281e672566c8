#!/usr/bin/env bash
# tools/update-po.sh: extract the translatable strings into po/lode.pot and
# merge them into every translation listed in po/LINGUAS, so translators see
# what is new (untranslated) or changed (fuzzy).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
xgettext --from-code=UTF-8 --keyword=_ --keyword=N_ --keyword=C_:1c,2 \
  --keyword=g_dngettext:2,3 --add-comments=Translators \
  --package-name=lode --msgid-bugs-address=lode@lodeapp.org \
  --files-from=po/POTFILES.in --output=po/lode.pot
for lang in $(cat po/LINGUAS); do
  if [ -s "po/$lang.po" ]; then
    msgmerge --quiet --update --backup=none "po/$lang.po" po/lode.pot
  else
    msginit --no-translator --locale="$lang" --input=po/lode.pot --output-file="po/$lang.po"
  fi
done
msgfmt --statistics -o /dev/null po/*.po
