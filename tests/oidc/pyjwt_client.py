"""A generic OpenID Connect client, configured with nothing but an issuer URL (argv[1]), a user
name and a password (argv[2], argv[3]): it discovers the token endpoint and the JWKS, obtains a
token with the password grant, and verifies it offline with PyJWT's PyJWKClient, pinning EdDSA
and checking the issuer and the audience. Prints the verified claims (JSON) on stdout."""

import json
import sys

import jwt
import requests

issuer, username, password = sys.argv[1:4]
discovery = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10)
discovery.raise_for_status()
config = discovery.json()
assert config["issuer"] == issuer, config

token_response = requests.post(
    config["token_endpoint"],
    data={"grant_type": "password", "username": username, "password": password},
    timeout=10,
)
token_response.raise_for_status()
token = token_response.json()["access_token"]

signing_key = jwt.PyJWKClient(config["jwks_uri"]).get_signing_key_from_jwt(token)
claims = jwt.decode(
    token,
    signing_key.key,
    algorithms=config["id_token_signing_alg_values_supported"],
    audience="vigia",
    issuer=issuer,
)
json.dump({"claims": claims, "expires_in": token_response.json()["expires_in"]}, sys.stdout)
