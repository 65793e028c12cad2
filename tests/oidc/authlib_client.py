"""An off-the-shelf OAuth2 client (authlib) configured with nothing but an issuer URL (argv[1]):
it discovers the endpoints, logs a person in with the password grant (argv[2], argv[3]),
refreshes the token, obtains a service token with client credentials (argv[4], argv[5]),
introspects and revokes through the endpoints discovery names, and verifies every access token
offline with PyJWT's PyJWKClient. Prints what it saw (JSON) on stdout; any failure raises."""

import json
import sys

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.base_client.errors import OAuthError

issuer, username, password, client_id, client_secret = sys.argv[1:6]
config = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10)
config.raise_for_status()
config = config.json()
assert config["issuer"] == issuer, config
jwks = jwt.PyJWKClient(config["jwks_uri"])


def verify(token):
    key = jwks.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key.key,
        algorithms=config["id_token_signing_alg_values_supported"],
        audience="vigia",
        issuer=issuer,
    )


# A person, through a public client: password grant, then a refresh.
person = OAuth2Session(client_id="authlib-test", token_endpoint_auth_method="none")
first = person.fetch_token(config["token_endpoint"], username=username, password=password)
person_claims = verify(first["access_token"])
second = person.refresh_token(config["token_endpoint"], refresh_token=first["refresh_token"])
assert second["refresh_token"] != first["refresh_token"]
refreshed_claims = verify(second["access_token"])
assert refreshed_claims["sid"] == person_claims["sid"]

# A service: client credentials, sent with HTTP Basic.
service = OAuth2Session(
    client_id, client_secret, token_endpoint_auth_method="client_secret_basic"
)
service_token = service.fetch_token(config["token_endpoint"], grant_type="client_credentials")
service_claims = verify(service_token["access_token"])

# The service asks about the person's tokens, and revokes the session.
seen = service.introspect_token(
    config["introspection_endpoint"], token=second["access_token"]
).json()
service.revoke_token(
    config["revocation_endpoint"],
    token=second["refresh_token"],
    token_type_hint="refresh_token",
).raise_for_status()
after = service.introspect_token(
    config["introspection_endpoint"], token=second["access_token"]
).json()

# The first refresh token, spent, presented again.
try:
    person.refresh_token(config["token_endpoint"], refresh_token=first["refresh_token"])
    reuse = "accepted"
except OAuthError as e:
    reuse = e.error

json.dump(
    {
        "person": person_claims,
        "refreshed": refreshed_claims,
        "service": service_claims,
        "introspected": seen,
        "after_revocation": after,
        "reuse": reuse,
    },
    sys.stdout,
)
