// chatwire's API as the pages call it: the session cookie goes by itself; every request
// that changes something carries the session's CSRF token.

let csrf = null;

export function setCsrf(token) {
  csrf = token;
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The error's text for a person, from chatwire's {message} when it sent one. */
export async function errorOf(response) {
  let message = `chatwire answered ${response.status} ${response.statusText}`.trim();
  try {
    const body = await response.json();
    if (body && typeof body.message === "string") message = body.message;
  } catch {
    // not JSON: the status says what there is to say
  }
  return new ApiError(response.status, message);
}

/** fetch() with the CSRF header; the response, or an ApiError when it is not ok. */
export async function call(method, path, body, options = {}) {
  const headers = {};
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal: options.signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "chatwire cannot be reached: is it running?");
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

/** The JSON answer of a call (null for 204). */
export async function json(method, path, body) {
  const response = await call(method, path, body);
  return response.status === 204 ? null : response.json();
}
