// camlog edge: viewer JWT (ES256) verification in njs.
//
// verify: the auth_request target. Checks the token in X-Camlog-Token like the origin does
// (pipeline/auth/viewer.py): three base64url parts, header alg ES256 with a kid we hold, an
// ECDSA P-256 signature (WebCrypto), integer iat/exp, exp in the future, a scope covering
// X-Camlog-Stream ("" = any stream). Answers 200 or 401/403 with X-Camlog-Problem and
// X-Accel-Expires, so nginx caches the verdict no longer than the token lives.
// Written for njs 0.7 (Debian 12): no destructuring, no shared dictionaries.

var MAX_TOKEN = 4096;
var VERDICT_TTL_S = 60;
var crypt = require('crypto');

function Refusal(status, code, detail) {
    this.status = status;
    this.code = code;
    this.detail = detail;
}

function b64json(part) {
    var text = Buffer.from(part, 'base64url').toString();
    var obj = JSON.parse(text);
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
        throw new Refusal(401, 'token_invalid', 'token is not a JWT');
    }
    return obj;
}

function scopeAllows(scopes, stream) {
    if (stream === '') {
        return true;
    }
    for (var i = 0; i < scopes.length; i++) {
        var s = scopes[i];
        if (s.endsWith('*') ? stream.startsWith(s.slice(0, -1)) : s === stream) {
            return true;
        }
    }
    return false;
}

var B64URL = /^[A-Za-z0-9_-]*$/;

async function check(r, token, stream, now) {
    if (!token) {
        throw new Refusal(401, 'token_missing', 'an Authorization: Bearer token is required');
    }
    var parts = token.split('.');
    if (token.length > MAX_TOKEN || parts.length !== 3 || !parts.every(function (p) { return B64URL.test(p); })) {
        throw new Refusal(401, 'token_invalid', 'token is not a JWT');
    }
    if (token.startsWith('cld1.')) {
        throw new Refusal(401, 'token_wrong_kind', 'a viewer token is required, got a device token');
    }
    var head, claims;
    try {
        head = b64json(parts[0]);
        claims = b64json(parts[1]);
    } catch (e) {
        throw new Refusal(401, 'token_invalid', 'token is not a JWT');
    }
    if (head.alg !== 'ES256') {
        throw new Refusal(401, 'token_invalid', 'token algorithm must be ES256');
    }
    var keys = JSON.parse(r.variables.camlog_keys);
    if (typeof head.kid !== 'string' || !Object.prototype.hasOwnProperty.call(keys, head.kid)) {
        throw new Refusal(401, 'token_unknown_key', 'token was signed with a key this server does not hold');
    }
    var sig = Buffer.from(parts[2], 'base64url');
    var key = await crypto.subtle.importKey('spki', Buffer.from(keys[head.kid], 'base64'),
                                            {name: 'ECDSA', namedCurve: 'P-256'}, false, ['verify']);
    var ok = sig.length === 64 && await crypto.subtle.verify(
        {name: 'ECDSA', hash: 'SHA-256'}, key, sig, Buffer.from(parts[0] + '.' + parts[1]));
    if (!ok) {
        throw new Refusal(401, 'token_bad_signature', 'token signature does not match');
    }
    var scp = claims.scp;
    if (!Array.isArray(scp) || scp.length === 0 || !scp.every(function (s) { return typeof s === 'string'; })
        || !Number.isInteger(claims.iat) || !Number.isInteger(claims.exp)) {
        throw new Refusal(401, 'token_invalid', 'token claims are malformed');
    }
    if (!(now < claims.exp)) {
        throw new Refusal(401, 'token_expired', 'token has expired');
    }
    if (!scopeAllows(scp, stream)) {
        throw new Refusal(403, 'token_scope', 'token does not cover this stream');
    }
    return claims;
}

async function verify(r) {
    var now = Date.now() / 1000;
    var token = r.headersIn['X-Camlog-Token'] || '';
    var stream = r.headersIn['X-Camlog-Stream'] || '';
    if (r.headersIn['X-Camlog-Method'] === 'OPTIONS') {  // CORS preflight carries no token
        r.headersOut['X-Accel-Expires'] = String(VERDICT_TTL_S);
        r.return(200);
        return;
    }
    try {
        var claims = await check(r, token, stream, now);
        var ttl = Math.max(0, Math.min(VERDICT_TTL_S, Math.floor(claims.exp - now)));
        r.headersOut['X-Accel-Expires'] = String(ttl);
        r.return(200);
    } catch (e) {
        if (!(e instanceof Refusal)) {
            r.error('camlog edge: token check failed: ' + e);
            e = new Refusal(401, 'token_invalid', 'token could not be checked');
        }
        r.headersOut['X-Camlog-Problem'] = e.code;
        r.headersOut['X-Camlog-Detail'] = e.detail;
        r.headersOut['X-Accel-Expires'] = String(VERDICT_TTL_S);
        r.return(e.status);
    }
}

// The verdict cache key: a digest, so no token is written into the cache's files.
function token_hash(r) {
    return crypt.createHash('sha256').update(r.variables.camlog_tok || '').digest('base64url');
}

export default {verify, token_hash};
