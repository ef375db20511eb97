# Shared by the zoo serve load scripts (sourced): a wrk script that posts one image, and a free loopback port.

# The Lua lines that make each wrk request POST the image at $1 (more lines may follow them).
post_image_lua() {
    cat <<LUA
local f = io.open("$1", "rb"); wrk.body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.headers["Content-Type"] = "image/png"
LUA
}

free_port() {
    python -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
}
