"""text.py: article HTML to plain text, which must survive whatever markup a mail client sends."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from connector.helpdesks.zammad.text import html_to_text

#: characters that steer html.parser into its rarely used branches (declarations, marked
#: sections, comments, processing instructions, character references)
_MARKUP = st.text(alphabet="<>![]-/?&#;=\"' abpCDATif\n", max_size=60)


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<div>Hello</div><![if-mso[ x ]]><div>db down</div>", "Hello\ndb down"),
        ("<p>a</p><![ CDATA[x]]>", "a"),
        ("<p>a</p><![if !mso]><p>b</p><![endif]>", "a\nb"),  # Outlook's conditional sections
        ("<style>p {}</style><p>x &amp; y</p><![if-mso[<br>1 < 2", "x & y\n1 < 2"),
        ("/<![!/>-]b;#=", "/-]b;#="),  # found by hypothesis
    ],
)
def test_markup_html_parser_refuses_is_stripped_instead(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


def test_ordinary_html_keeps_its_line_structure() -> None:
    markup = "<div>После обновления&nbsp;обмен падает:</div><p>ошибка 500 &lt;sale&gt;</p>"
    assert html_to_text(markup) == "После обновления обмен падает:\nошибка 500 <sale>"


@given(st.one_of(st.text(max_size=200), _MARKUP))
@example("<![if-mso[")
@example("<![ CDATA[")
def test_any_body_gives_text_and_never_raises(markup: str) -> None:
    text = html_to_text(markup)
    assert text == text.strip()
    assert "\n\n" not in text
    assert "\xa0" not in text
