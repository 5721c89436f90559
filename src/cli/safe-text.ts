// Text from agents, made safe to print for an operator. A terminal acts on
// control characters (escape sequences move the cursor, recolour, erase) and
// reorders or hides bidi and zero-width characters, so the text an operator
// reads could differ from the value the gate holds. Every such character is
// shown as a visible escape instead.

/**
 * C0 and C1 controls and DEL, format characters (bidi controls, zero-width,
 * tags), line and paragraph separators, lone surrogates; and what a terminal
 * draws as nothing or as the font likes: default-ignorable code points
 * (variation selectors, Hangul fillers), unassigned and private-use ones,
 * and the Hangul vowel and final jamo, which join the letter before them
 * (zero width on their own).
 */
const HIDDEN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Default_Ignorable_Code_Point}\p{Cn}\p{Co}\u1160-\u11ff\ud7b0-\ud7ff]/gu;
/** The same, less the newline JSON.stringify uses for layout (C0 inside strings it escapes itself). */
const HIDDEN_IN_JSON = /[\u007f-\u009f\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Default_Ignorable_Code_Point}\p{Cn}\p{Co}\u1160-\u11ff\ud7b0-\ud7ff]/gu;
/** Combining marks past the second on one character: a stack of them draws over the lines around it. */
const STACKED_MARKS = /(?<=\p{M}{2})\p{M}/gu;

const codePoint = (c: string) => `\\u{${c.codePointAt(0)!.toString(16)}}`;

/** Plain text for a human: hidden characters as \u{202e}, a backslash doubled so an escape cannot be faked. */
export function displayText(s: unknown): string {
  return String(s).replace(/\\/g, '\\\\').replace(HIDDEN, codePoint).replace(STACKED_MARKS, codePoint);
}

/** Lines for a human whose values are already escaped or JSON: any hidden character left (not the newlines between lines) as \u{202e}. */
export function displayLines(json: string): string {
  return json.replace(HIDDEN, (c) => (c === '\n' ? c : codePoint(c))).replace(STACKED_MARKS, codePoint);
}

/** JSON for a human: the value's JSON with hidden characters as \u{202e}. */
export function displayJson(value: unknown): string {
  return displayLines(JSON.stringify(value, null, 2));
}

/**
 * Exact JSON for machines that is still safe on a terminal: hidden
 * characters JSON.stringify leaves as they are become \uXXXX escapes (the
 * same value once parsed).
 */
export function safeJson(value: unknown, indent?: number): string {
  return safeJsonText(JSON.stringify(value, null, indent));
}

/** JSON text with the hidden characters inside its strings as \uXXXX (outside strings JSON has none). */
export function safeJsonText(json: string): string {
  return json.replace(HIDDEN_IN_JSON, jsonEscape).replace(STACKED_MARKS, jsonEscape);
}

/** A character as JSON's \uXXXX escapes (an astral one as its surrogate pair). */
function jsonEscape(c: string): string {
  let out = '';
  for (let i = 0; i < c.length; i++) out += `\\u${c.charCodeAt(i).toString(16).padStart(4, '0')}`;
  return out;
}
