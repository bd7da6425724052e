"""Prints the value of the named <input> of an HTML form read from stdin (entities decoded),
for scripts that post a form the way a browser would:  form_field.py csrf < page.html"""
import sys
from html.parser import HTMLParser

wanted = sys.argv[1]


class Inputs(HTMLParser):
    value = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("name") == wanted and self.value is None:
            self.value = attrs.get("value") or ""


parser = Inputs()
parser.feed(sys.stdin.read())
if parser.value is None:
    sys.exit(f"no input named {wanted!r} in the page")
print(parser.value)
