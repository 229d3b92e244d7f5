#!/bin/sh
# A Chromium for the chat panel's browser test (tests/test_chat_web.py); optional where apt is not ours.
if [ -x /usr/bin/chromium ]; then
	echo "chromium present: /usr/bin/chromium"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "installing chromium (apt) for the browser tests"
	{ apt-get install -y -qq chromium >/dev/null 2>&1 ||
	  { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; }; } ||
		echo "could not install chromium with apt; tests/test_chat_web.py will be skipped"
else
	echo "no /usr/bin/chromium (and not root with apt-get): tests/test_chat_web.py will be skipped"
fi
