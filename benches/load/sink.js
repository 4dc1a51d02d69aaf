// Upstream helper: nginx's js_content reads the whole request body before calling these, so
// an upload is fully consumed before the answer (a bare `return 200` may answer early and
// make a proxy abandon the rest of the body).
function sink(r) {
    r.headersOut['Content-Type'] = 'application/json';
    r.return(200, '{"ok":true}\n');
}

// Same, reporting how many body bytes arrived (used once per target as a sanity check).
function count(r) {
    var n = r.requestBuffer ? r.requestBuffer.length : -1;
    r.headersOut['Content-Type'] = 'application/json';
    r.return(200, JSON.stringify({ received: n }) + '\n');
}

export default { sink, count };
