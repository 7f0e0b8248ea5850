/**
 * Alphabets for generated secrets. Every character must survive, unquoted and
 * unescaped, an env file, a POSIX shell word and the userinfo part of a
 * PostgreSQL URL, so the specials are limited to ones that mean nothing in any
 * of them: no quotes, backslash, whitespace, `#`, `$`, `%`, backtick, glob or
 * history characters, no URL delimiters (`@ : / ? #`).
 */
export const SAFE_SPECIALS = "-_.+=,";

export const ALPHABETS = {
  /** Letters, digits and SAFE_SPECIALS: 68 symbols, about 6.1 bits each. */
  safe: { specials: SAFE_SPECIALS },
  /** Letters and digits only: 62 symbols, about 5.95 bits each. */
  alphanumeric: { specials: "" },
} as const;

export type AlphabetName = keyof typeof ALPHABETS;

export function isAlphabetName(name: string): name is AlphabetName {
  return Object.prototype.hasOwnProperty.call(ALPHABETS, name);
}

/** Every character a value generated from `name` may contain. */
export function alphabetCharacters(name: AlphabetName): string {
  return "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789" + ALPHABETS[name].specials;
}
