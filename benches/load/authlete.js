// nginx+njs "DIY" peer: the auth_request handler of the classic NGINX token-introspection
// pattern, speaking Authlete's introspection API instead of RFC 7662. The subrequest
// /_authlete_introspection (see run.sh's nginx config) does
//   POST /api/<serviceId>/auth/introspection
//   Authorization: Bearer <service access token>
//   {"token":"<access token>"}
// and is proxy_cache'd for 10 s keyed on the client's Authorization header.
// Allowed when Authlete says action == "OK" and the route's scope ($required_scope) is among
// the token's scopes; 401 otherwise, 403 for a missing scope, 500 (auth_request's answer to
// anything else) when the API call fails. It does not check DPoP proofs.
function introspect(r) {
    r.subrequest("/_authlete_introspection", function (reply) {
        if (reply.status != 200) {
            r.return(500);
            return;
        }
        var resp;
        try {
            resp = JSON.parse(reply.responseText);
        } catch (e) {
            r.return(500);
            return;
        }
        if (resp.action !== "OK") {
            r.return(401);
            return;
        }
        var scopes = resp.scopes || [];
        var required = r.variables.required_scope;
        if (required && scopes.indexOf(required) < 0) {
            r.return(403);
            return;
        }
        r.headersOut['X-Auth-Subject'] = resp.subject || '';
        r.headersOut['X-Auth-Scopes'] = scopes.join(' ');
        r.return(204);
    });
}

export default { introspect };
