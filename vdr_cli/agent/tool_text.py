"""How tool results are written for the model: the reference's exact texts.

`search`, `visit`, `crop_and_search` (and vdr's opt-in `zoom`) results, and the
prompts of the page summariser.  The conversation's framing (system prompt,
first turn, corrective messages) is in `prompt.py`.
"""


from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from vdr_cli.agent.prompt import (CONTENT_TRUNCATED, CROP_EVIDENCE_CHARS, CROP_EXTRACT_CHARS, CROP_EXTRACT_IMAGES,
                                  CROP_INVALID_BBOX, MAX_CONTENT_CHARS, MAX_IMAGE_HITS,
                                  MAX_SEARCH_RESULTS, MAX_VISIT_URLS, VISIT_NO_URL)

# --- search results -------------------------------------------------------------

RESULT_SEPARATOR = "\n=======\n"            # between queries of one search call
BLOCK_SEPARATOR = "\n\n=======\n\n"         # between URLs of a visit, between bboxes, between hit pages


def search_error(query: str, error: object) -> str:
    """Reference text for a query whose request failed."""
    return f"Search request failed for '{query}': {error}"


def format_query(query: str, hits: Sequence[Mapping[str, Any]]) -> str:
    """One query's block: numbered markdown links, optional date and snippet lines."""
    entries = []
    for idx, hit in enumerate(list(hits)[:MAX_SEARCH_RESULTS], 1):
        title = hit.get("title") or "Untitled"
        url = hit.get("url") or hit.get("link") or ""
        entry = f"{idx}. [{title}]({url})"
        if hit.get("date"):
            entry += f"\n   Date published: {hit['date']}"
        snippet = str(hit.get("snippet") or hit.get("description") or "").strip()
        if snippet:
            entry += f"\n   {snippet}"
        entries.append(entry)
    if not entries:
        return f"No search results found for '{query}'"
    return f"Search for '{query}' returned {len(entries)} results:\n\n" + "\n\n".join(entries)


def format_search(query_results: Sequence[tuple[str, Sequence[Mapping[str, Any]] | str]]) -> str:
    """A whole `search` call: one block per query, in the order asked, joined by a line
    of "=======". A str in place of the hits is an error text, shown as is
    (see `search_error`)."""
    blocks = [hits if isinstance(hits, str) else format_query(q, hits) for q, hits in query_results]
    return RESULT_SEPARATOR.join(blocks)


# --- visit results ----------------------------------------------------------------

VISIT_FAIL_SUMMARY = "Unable to retrieve webpage content. Please check the link or try again later."
VISIT_NO_SUMMARY = "No summary generated"
VISIT_RAW_SUMMARY = "Summary service unavailable. Returning raw content."


def normalize_url(url: str) -> str:
    """The reference adds https:// to a URL without a scheme."""
    url = url.strip()
    return url if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", url) else f"https://{url}"


def truncate_content(text: str, limit: int = MAX_CONTENT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + CONTENT_TRUNCATED


def _visit_block(url: str, goal: str | None, evidence: str, summary: str) -> str:
    return (
        f"The useful information in {url} for user goal {goal or 'N/A'} as follows: \n\n"
        "Evidence in page: \n" + evidence + "\n\n"
        "Summary: \n" + summary + "\n\n"
    )


def format_visit_page(page: Mapping[str, Any], goal: str | None = None) -> str:
    """One URL's block. `page`: url, goal, and either evidence/summary (a summariser's
    output), or `error` (the reason the page could not be read: the reference's failure
    text), or only `text` (no summariser: the raw page as evidence)."""
    url = str(page.get("url") or "")
    goal = page.get("goal") if page.get("goal") is not None else goal
    if page.get("error"):
        return _visit_block(url, goal, str(page["error"]), VISIT_FAIL_SUMMARY)
    evidence = page.get("evidence") or ""
    summary = page.get("summary") or ""
    if not evidence and not summary and page.get("text"):
        return _visit_block(url, goal, truncate_content(str(page["text"])), VISIT_RAW_SUMMARY)
    return _visit_block(url, goal, str(evidence or page.get("text") or ""), str(summary or VISIT_NO_SUMMARY))


def format_visit(pages: Sequence[Mapping[str, Any]], goal: str | None = None) -> str:
    """A whole `visit` call: one block per URL (at most MAX_VISIT_URLS), joined by
    "\\n\\n=======\\n\\n"; no URL at all gives the reference's "[Visit] No valid URL provided"."""
    if not pages:
        return VISIT_NO_URL
    return BLOCK_SEPARATOR.join(format_visit_page(p, goal) for p in list(pages)[:MAX_VISIT_URLS])


# --- crop_and_search results ---------------------------------------------------------

CROP_NO_SUMMARY = "Summary unavailable."


def bbox_text(bbox: Sequence[float]) -> str:
    """A box as the reference prints it (Python's str of the list the model wrote):
    whole numbers without ".0", so [100.0, 20, ...] reads "[100, 20, ...]"."""
    parts = [str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in bbox]
    return "[" + ", ".join(parts) + "]"


def _page_for(hit: Mapping[str, Any], pages: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    url = hit.get("url") or hit.get("link")
    for page in pages:
        if url and url in (page.get("url"), page.get("final_url")):
            return page
    return None


# Osilly/Vision-DeepResearch rllm/eval/tools.py @ 67af60f, CropAndSearchTool._handle_single_url:
# an empty page is summarised as "Webpage content is empty."; the evidence falls back to
# `content[:2000] + "..."`, the summary to the reader's description, else "Summary unavailable.".
CROP_EMPTY_PAGE = "Webpage content is empty."


def crop_page_content(text: str, truncated: bool = False, limit: int = MAX_CONTENT_CHARS) -> str:
    """A hit page's text as the reference's crop summariser gets it (empty → CROP_EMPTY_PAGE;
    over 120,000 characters, or cut short when read → the reference's truncation mark)."""
    if not text:
        return CROP_EMPTY_PAGE
    if len(text) > limit or truncated:
        return text[:limit] + CONTENT_TRUNCATED
    return text


def format_hit_page(hit: Mapping[str, Any], page: Mapping[str, Any] | None) -> str:
    """One reverse-image hit and what its page says (no "[n] " prefix). `page`: url, error
    (unreadable), content (`crop_page_content`), description, extract (the summariser's parsed
    dict, or None when there is none). Pages with evidence/summary but no extract (older
    traces) count those as the extract."""
    title = hit.get("title", "Untitled")
    url = hit.get("url") or hit.get("link") or ""
    if page is None or page.get("error"):
        return f"[Error] Failed to fetch content from {url}"
    content = str(page["content"]) if "content" in page else crop_page_content(str(page.get("text") or ""))
    extract = page.get("extract")
    if extract is None and (page.get("evidence") or page.get("summary")):
        extract = {"evidence": page.get("evidence"), "summary": page.get("summary")}
    fallback = content[:CROP_EVIDENCE_CHARS] + ("..." if len(content) > CROP_EVIDENCE_CHARS else "")
    description = page.get("description") or ""
    if extract is not None:
        evidence = extract.get("evidence") or fallback
        summary = extract.get("summary") or description or ""
    else:
        evidence, summary = fallback, description or CROP_NO_SUMMARY
    return (
        f"The useful information in [{title}]({url}) are:\n\n"
        f"Evidence in page:\n{evidence}\n\n"
        f"Summary:\n{summary}\n\n"
    )


def format_region(region: Mapping[str, Any]) -> str:
    """One bbox. `region`: bbox (as the model wrote it: printed as Python prints it, as the
    reference does), hits (title/url/image_url, best first), pages (`format_hit_page`), error
    (why there are no hits; "crop" in it: the box could not be cut)."""
    box = region.get("bbox")
    hits = list(region.get("hits") or [])[:MAX_IMAGE_HITS]
    if not hits:
        reason = region.get("error")
        if reason and "crop" in str(reason).lower():
            return f"Bbox {box}: Image cropping failed"
        return f"Bbox {box}: Image search failed"
    pages = list(region.get("pages") or [])
    blocks = [f"[{i}] {format_hit_page(hit, _page_for(hit, pages))}" for i, hit in enumerate(hits, 1)]
    return f"The search results for bbox {box} are as follows:\n" + BLOCK_SEPARATOR.join(blocks)


def format_crop_and_search(regions: Sequence[Mapping[str, Any]]) -> str:
    """A whole `crop_and_search` call: one block per bbox, in the order asked, joined by
    "\\n\\n=======\\n\\n"; no usable bbox gives "[CropAndSearch] Invalid bbox format"."""
    if not regions:
        return CROP_INVALID_BBOX
    return BLOCK_SEPARATOR.join(format_region(r) for r in regions)


# --- zoom (vdr's opt-in tool) --------------------------------------------------------


def format_zoom(image_id: str, crops: Sequence[Mapping[str, Any]]) -> str:
    """The text that goes with zoom's images, one line per crop, in order."""
    return "\n".join(
        f"Zoomed region {i} of {image_id} at {bbox_text(c.get('box_1000') or c.get('bbox') or [])}: "
        f"{c.get('width')}x{c.get('height')} pixels"
        for i, c in enumerate(crops, 1)
    )


# --- page summaries (the summarising model's prompts) ------------------------------------

EXTRACTOR_SYSTEM = "You are a helpful assistant."
EXTRACTOR_PROMPT = """Please process the following webpage content and user goal to extract relevant information:

## **Webpage Content** 
{webpage_content}

## **User Goal**
{goal}

## **Task Guidelines**
1. **Content Scanning for Rational**: Locate the **specific sections/data** directly related to the user's goal within the webpage content
2. **Key Extraction for Evidence**: Identify and extract the **most relevant information** from the content, you never miss any important information, output the **full original context** of the content as far as possible, it can be more than three paragraphs.
3. **Summary Output for Summary**: Organize into a concise paragraph with logical flow, prioritizing clarity and judge the contribution of the information to the goal.

**Final Output Requirements**
- Return a valid JSON object only (no code fences, Markdown, comments, or additional text).
- The JSON must contain exactly the keys "rational", "evidence", and "summary".
- Each key must map to a string value. Use an empty string if no content is available.
- Do not include any extra keys or explanatory sentences outside the JSON object.

Example:
{{"rational": "Explain why the information is relevant to the goal.", "evidence": "Quote or paraphrase the key supporting content from the webpage.", "summary": "Provide a concise summary that connects the evidence back to the goal."}}
"""


def extractor_prompt(page_text: str, goal: str | None) -> str:
    """The user turn for a `visit` summary (system turn: EXTRACTOR_SYSTEM)."""
    return EXTRACTOR_PROMPT.format(webpage_content=page_text, goal=goal or "N/A")


# crop_and_search's summariser also sees the crop and the hit's images: rllm/eval/tools.py
# @ 67af60f, CropAndSearchTool._summarize_with_vllm, EXTRACTOR_PROMPT, sent as the system turn.
# The reference never calls .format() on it, so its example really reads "{{...}}": kept.
CROP_EXTRACTOR_PROMPT = """You are a multimodal intelligent assistant capable of analyzing both images and text. You will receive a user's query image, query goal, and relevant web content (including search result previews such as website source, page title, and preview images; as well as the main body text and images retrieved from accessing the web pages). Your task is to extract key information that helps the user achieve their goal.

## Task Guidelines
1. **Image Matching**: Compare the user's query image with the images on the web pages (including search result preview images and images within the page content). Evaluate their visual relevance and determine whether they depict the same entity as the user's query image.
2. **Information Extraction**: When they are determined to be the same entity: Extract from the web content the key information most relevant to the user's goal, to support or fulfill the user's query. When they are determined not to be the same entity: Briefly describe the main visual differences between the query image and the web images, and extract information from the web pages that may still be useful as a reference for the user.

## Final Output Requirements
- Output **only** a valid JSON object (no Markdown, code blocks, comments, or any other text).
- The JSON object must contain three keys: `"rational"`, `"evidence"`, and `"summary"`.
- Each key must map to a **string** (use an empty string if no relevant content is available).
- Do not include any other fields or explanations outside the JSON object.

Example:
{{"rational": "Explain why the information is relevant to the goal.", "evidence": "Quote or paraphrase the key supporting content from the webpage.", "summary": "Provide a concise summary that connects the evidence back to the goal."}}
"""


def crop_extractor_content(
    goal: str | None,
    page_text: str,
    *,
    title: str = "",
    source: str = "",
    query_image: Any = None,
    main_image: Any = None,
    thumbnail: Any = None,
    page_images: Sequence[tuple[str, Any]] = (),
) -> list[dict[str, Any]]:
    """The user turn for a crop_and_search page summary (system turn: CROP_EXTRACTOR_PROMPT),
    as ordered parts {"type": "text", "text"} / {"type": "image", "image": ref}. Image refs
    are opaque (paths, URLs); pass only those that loaded. page_images: (alt text, ref)."""
    parts: list[dict[str, Any]] = []

    def text(t: str) -> None:
        parts.append({"type": "text", "text": t})

    def image(ref: Any) -> None:
        parts.append({"type": "image", "image": ref})

    if query_image is not None:
        text("User's query image (the image the user is searching for):")
        image(query_image)
    if goal:
        text(f"User's goal:\n{goal}")
    meta = ([f"Website source: {source}"] if source else []) + ([f"Page title: {title}"] if title else [])
    if meta:
        text("Search result metadata:\n" + "\n".join(meta))
    for label, ref in (("Main image", main_image), ("Thumbnail", thumbnail)):
        if ref is not None:
            text(f"Search result {label}:")
            image(ref)
    if page_text.strip():
        body = page_text if len(page_text) <= CROP_EXTRACT_CHARS else page_text[:CROP_EXTRACT_CHARS] + "...\n[Content truncated]"
        text("Webpage content:\n\n" + body)
    shown = list(page_images)[:CROP_EXTRACT_IMAGES]
    if shown:
        text("Images from webpage:")
        for alt, ref in shown:
            if alt.strip():
                text(f"Image '{alt}':")
            image(ref)
    return parts


# When the multimodal request gives no JSON, the reference asks again with the page text
# alone: CropAndSearchTool._summarize_with_vllm_only_text, TEXT_ONLY_PROMPT (tools.py @ 67af60f).
CROP_TEXT_ONLY_PROMPT = """You are a text analysis assistant. You will receive webpage content (text only) and a user's goal. Your task is to extract information that helps achieve the user's goal.

## Task Guidelines
1. **Content Relevance**: Evaluate how the webpage text relates to the user's goal.
2. **Information Extraction**: Extract key information from the webpage text that supports the user's goal.

## Final Output Requirements
- Output **only** a valid JSON object (no Markdown, code blocks, or any other text).
- The JSON object must contain three keys: `"rational"`, `"evidence"`, and `"summary"`.
- Each key must map to a **string** (use an empty string if no relevant content is available).
- Do not include any additional fields or explanations outside the JSON object.

Example:
{"rational": "Explain why the information is relevant to the goal.", "evidence": "Quote or paraphrase the key supporting content from the webpage.", "summary": "Provide a concise summary that connects the evidence back to the goal."}
"""


def crop_text_only_content(goal: str | None, page_text: str) -> list[dict[str, Any]]:
    """The user turn of the text-only retry (system turn: CROP_TEXT_ONLY_PROMPT)."""
    body = page_text if len(page_text) <= CROP_EXTRACT_CHARS else page_text[:CROP_EXTRACT_CHARS] + "...\n[Content truncated]"
    parts = [{"type": "text", "text": f"Webpage content:\n\n{body}"}]
    if goal:
        parts.append({"type": "text", "text": f"\nUser's goal: {goal}"})
    return parts


def parse_crop_extract(text: str) -> dict[str, Any] | None:
    """The multimodal summariser's answer read as the reference reads it: stripped, one
    leading ```json or ``` and one trailing ``` removed, then strict JSON; a JSON object gets
    missing keys as ""; anything else is None (then the text-only retry runs)."""
    cleaned = (text or "").strip()
    if cleaned.startswith("```json"):
        cleaned = cleaned[7:]
    elif cleaned.startswith("```"):
        cleaned = cleaned[3:]
    if cleaned.endswith("```"):
        cleaned = cleaned[:-3]
    try:
        parsed = json.loads(cleaned)
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    return {**{k: "" for k in SUMMARY_KEYS if k not in parsed}, **parsed}


def parse_crop_text_only(text: str) -> dict[str, Any] | None:
    """The text-only retry's answer: `json.loads(content.strip())`, an object or None."""
    try:
        parsed = json.loads((text or "").strip())
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


SUMMARY_KEYS = ("rational", "evidence", "summary")
_FENCE = re.compile(r"```[A-Za-z]*\s*(.*?)```", re.S)
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)


def parse_summary(text: str) -> dict[str, str]:
    """The summariser's JSON as {rational, evidence, summary} (all str; missing keys "").

    Tolerates code fences, a <think> block and prose around the object. When no JSON
    object parses, falls back as the reference does: rational "", evidence = summary =
    the raw text (stripped)."""
    raw = (text or "").strip()
    cleaned = _THINK.sub("", raw).strip()
    for candidate in [m.group(1) for m in _FENCE.finditer(cleaned)] + [cleaned]:
        obj = _json_object(candidate)
        if obj is not None:
            return {k: _as_str(obj.get(k)) for k in SUMMARY_KEYS}
    fallback = cleaned or raw
    return {"rational": "", "evidence": fallback, "summary": fallback}


def _json_object(text: str) -> dict[str, Any] | None:
    text = text.strip()
    decoder = json.JSONDecoder(strict=False)
    start = text.find("{")
    while start != -1:
        try:
            obj, _ = decoder.raw_decode(text, start)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and any(k in obj for k in SUMMARY_KEYS):
            return obj
        start = text.find("{", start + 1)
    return None


def _as_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "\n".join(_as_str(v) for v in value)
    return json.dumps(value, ensure_ascii=False)
