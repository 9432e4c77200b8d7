// Remembers the last project and environment picked, so that every page
// opens where the member left off. Only slugs are stored, never secrets.

const PREFIX = 'flagbridge.';

/** remembered returns a stored preference, or "". */
export function remembered(name) {
  try {
    return localStorage.getItem(PREFIX + name) || '';
  } catch {
    return '';
  }
}

/** remember stores a preference; an empty value forgets it. */
export function remember(name, value) {
  try {
    if (value) localStorage.setItem(PREFIX + name, value);
    else localStorage.removeItem(PREFIX + name);
  } catch {
    // Storage may be disabled; preferences are a convenience only.
  }
}
