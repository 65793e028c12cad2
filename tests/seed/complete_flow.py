# The API document's "Complete Authentication Flow", all four steps, exactly as published except
# for the example e-mail (mangled by the page it was copied from; CONTRACT.md gives the real one).
# tests/api/seed_client.rs swaps the base URL for the test server's and appends a line that
# prints what each step returned.
import requests
# 1. Login
login_response = requests.post(
"https://api.vigia.com/api/v1/auth/login",
headers={"X-Tenant": "acme-pharma"},
data={
"username": "juan.perez@example.com",
"password": "SecurePass123"
}
)
token = login_response.json()["access_token"]
# 2. Use token for authenticated requests
headers = {
"Authorization": f"Bearer {token}",
"X-Tenant": "acme-pharma"
}
# 3. Get current user info
user_info = requests.get(
"https://api.vigia.com/api/v1/auth/me",
headers=headers
).json()
# 4. Make other API calls
icsrs = requests.get(
"https://api.vigia.com/api/v1/icsrs",
headers=headers
).json()
