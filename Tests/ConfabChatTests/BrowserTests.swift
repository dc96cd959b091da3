import Foundation
import Testing

/// The web client in a real browser: headless Chromium (Debian's `chromium`) drives two signed-in
/// users in two tabs against a real ring and chat server. They exchange 1:1 and group messages
/// live, and a message's markup arrives as text. A third user follows over long polling.
@Suite(.serialized) struct BrowserTests {
    @Test(.timeLimit(.minutes(2))) func twoUsersChatInTheWebClient() async throws {
        await Self.withBackendAndBrowser(chatServers: 1) { urls, devtools, _ in
            try await TwoUserScenario(url: urls[0], devtools: devtools).run()
        }
    }

    /// Alice and bob belong to different chat servers (the test picks bob's handle so that it
    /// hashes to the other one) and still chat live.
    @Test(.timeLimit(.minutes(2))) func usersOnTwoChatServersChatLive() async throws {
        await Self.withBackendAndBrowser(chatServers: 2) { urls, devtools, backend in
            try await TwoServerScenario(urls: urls, devtools: devtools, backend: backend).run()
        }
    }

    /// Starts the ring, the chat servers and Chromium, runs `body`, and stops everything; a failure
    /// anywhere is recorded with the chat servers' logs.
    static func withBackendAndBrowser(
        chatServers: Int,
        _ body: ([String], DevToolsConnection, BrowserTestBackend) async throws -> Void
    ) async {
        guard let chromium = HeadlessChromium.executablePath() else {
            Issue.record(
                """
                Chromium is not installed, so the web client's browser test cannot run. \
                Run `bash tools/setup.sh` (it installs Debian's `chromium` package), or set CONFAB_CHROMIUM \
                to a Chromium or Chrome binary.
                """)
            return
        }
        guard let binary = BrowserTestBackend.confabBinary() else {
            Issue.record("confab executable not found next to the test bundle")
            return
        }
        let started = ContinuousClock.now
        let backend = BrowserTestBackend()
        defer { backend.stop() }
        func logs() -> String {
            (1...chatServers).map { "chat server \($0) log:\n\(backend.log($0 == 1 ? "chat" : "chat\($0)"))" }.joined(
                separator: "\n")
        }
        let urls: [String]
        do {
            urls = try await backend.start(binary: binary, chatServers: chatServers)
        } catch {
            Issue.record("the ring or chat servers did not start: \(error)\n\(logs())")
            return
        }
        let browser: HeadlessChromium
        do {
            browser = try await offCooperativeThread { try HeadlessChromium(executable: chromium) }
        } catch {
            Issue.record("\(error)")
            return
        }
        defer { browser.stop() }  // a no-op after the orderly stop below
        let devtools = await DevToolsConnection.connect(browser.browserWebSocketURL)
        var passed = false
        do {
            try await body(urls, devtools, backend)
            passed = true
        } catch {
            Issue.record("\(error)\n\(logs())")
        }
        await devtools.close()
        // Chromium takes a moment to exit: wait for it off the cooperative pool.
        _ = try? await offCooperativeThread { browser.stop() }
        if passed {
            print("browser test with \(chatServers) chat server(s) passed in \(ContinuousClock.now - started)")
        }
    }
}

/// Two users whose home servers differ: 1:1 both ways and a group message, all live.
struct TwoServerScenario {
    let urls: [String]
    let devtools: DevToolsConnection
    let backend: BrowserTestBackend

    func run() async throws {
        let alice = try await BrowserPage.open(urls[0], name: "alice", on: devtools)
        // Both servers must see each other before their routes agree.
        try await alice.waitFor(
            "both chat servers see two live servers",
            """
            (async () => { const hs = await Promise.all(\(BrowserPage.literal(urls.joined(separator: " "))).split(' ')
                .map(u => fetch(u + '/api/health').then(r => r.json())));
              return hs.every(h => h.servers === 2); })()
            """)
        let bobHandle = try await alice.string(
            """
            (async () => {
              const owner = async (u) => (await (await fetch('/api/route?user=' + u)).json()).serverId;
              const a = await owner('alice');
              const seen = [a];
              for (let i = 0; i < 64; i++) { const h = 'bob' + i; const o = await owner(h); if (o !== a) return h; seen.push(o); }
              return 'none: ' + JSON.stringify(await (await fetch('/api/health')).json()) + ' ' + seen.slice(0, 5).join(',');
            })()
            """)
        guard !bobHandle.hasPrefix("none") else {
            throw BrowserTestError("every handle tried belongs to alice's chat server: \(bobHandle)")
        }
        let bob = try await BrowserPage.open(urls[1], name: bobHandle, on: devtools)
        // The login page leads with "Log in" and fits the window (no empty scrollbar).
        #expect(try await alice.string("document.querySelector('#auth-view form h2').textContent") == "Log in")
        #expect(
            try await alice.evaluate("document.documentElement.scrollHeight <= window.innerHeight") as? Bool == true)
        try await screenshot(alice, "login")
        // A wrong password shows the server's words, not "500 Internal Server Error" (the page's
        // requests carry an Origin header).
        try await alice.fill("#login-handle", "nobody_yet")
        try await alice.fill("#login-password", "wrong-password")
        try await alice.click("#login-button")
        try await alice.waitFor(
            "the login error is shown", "document.getElementById('auth-error').textContent.length > 0")
        let loginError = try await alice.string("document.getElementById('auth-error').textContent")
        #expect(loginError.contains("unknown handle or wrong password") && !loginError.contains("500"), "\(loginError)")
        try await signUp(alice, "alice")
        try await signUp(bob, bobHandle)
        for page in [alice, bob] {
            try await page.waitFor(
                "\(page.name) is connected over the WebSocket",
                "document.getElementById('connection-status').dataset.state === 'websocket'")
        }
        let homes = [
            try await alice.string("window.confab.state.serverId"),
            try await bob.string("window.confab.state.serverId"),
        ]
        #expect(homes[0] != homes[1], "alice and \(bobHandle) are on the same chat server: \(homes)")

        // Starting a chat with a handle nobody has shows the server's words.
        try await alice.fill("#new-direct-handle", "nobody_has_this")
        try await alice.click("#new-direct-button")
        try await alice.waitFor(
            "the unknown-handle error is shown", "document.getElementById('sidebar-error').textContent.length > 0")
        let unknownError = try await alice.string("document.getElementById('sidebar-error').textContent")
        #expect(
            unknownError.contains("no user \"nobody_has_this\"") && !unknownError.contains("500"), "\(unknownError)")

        try await alice.fill("#new-direct-handle", bobHandle)
        try await alice.click("#new-direct-button")
        try await alice.waitFor(
            "the direct chat is open", "document.getElementById('conversation').dataset.chatId !== ''")
        let directId = try await alice.string("document.getElementById('conversation').dataset.chatId")
        // Presence is true across servers: bob is homed on the other chat server.
        try await alice.waitFor(
            "alice sees \(bobHandle), homed on the other server, online",
            "document.getElementById('presence').textContent === 'online'")
        try await alice.fill("#composer", "across servers")
        try await alice.click("#send-button")
        try await bob.waitFor(
            "\(bobHandle) gets the chat with 1 unread",
            "document.querySelector('[data-testid=chat-item][data-chat-id=\"\(directId)\"] [data-testid=unread-count]')?.textContent === '1'"
        )
        try await bob.click("[data-testid=chat-item][data-chat-id='\(directId)']")
        try await bob.waitFor(
            "\(bobHandle) sees alice's message",
            "[...document.querySelectorAll('[data-testid=message-text]')].some(e => e.textContent === 'across servers')"
        )
        try await bob.fill("#composer", "and back")
        try await bob.click("#send-button")
        try await alice.waitFor(
            "alice sees the reply from the other server",
            "[...document.querySelectorAll('[data-testid=message-text]')].some(e => e.textContent === 'and back')")

        try await alice.fill("#new-group-title", "Two servers")
        try await alice.fill("#new-group-members", bobHandle)
        try await alice.click("#new-group-button")
        try await alice.waitFor(
            "the group is open",
            "!['', \(BrowserPage.literal(directId))].includes(document.getElementById('conversation').dataset.chatId)")
        let groupId = try await alice.string("document.getElementById('conversation').dataset.chatId")
        try await alice.fill("#composer", "group across servers")
        try await alice.click("#send-button")
        try await bob.waitFor(
            "\(bobHandle) sees the group first in the list",
            "document.querySelector('[data-testid=chat-item]')?.dataset.chatId === \(BrowserPage.literal(groupId))")
        try await bob.click("[data-testid=chat-item][data-chat-id='\(groupId)']")
        try await bob.waitFor(
            "\(bobHandle) sees the group message",
            "[...document.querySelectorAll('[data-testid=message-text]')].some(e => e.textContent === 'group across servers')"
        )
        #expect(try await bob.string("document.getElementById('conversation-id').textContent") == groupId)
        #expect(
            try await bob.evaluate("document.getElementById('chat-info').open") as? Bool == false,
            "the chat id is behind the details control, not in the header")
        // Group management in the page: the owner sees the members and removes one; the removed
        // member's list loses the group at once (chat_removed).
        try await alice.waitFor(
            "the group's members are listed",
            "[...document.querySelectorAll('[data-testid=group-member-list] li')].map(e => e.dataset.userId).includes(\(BrowserPage.literal(bobHandle)))"
        )
        try await alice.click("[data-testid=group-member-list] li[data-user-id='\(bobHandle)'] button")
        try await bob.waitFor(
            "\(bobHandle) no longer has the group",
            "!document.querySelector('[data-testid=chat-item][data-chat-id=\"\(groupId)\"]')")
        try await alice.waitFor(
            "the member list no longer shows \(bobHandle)",
            "![...document.querySelectorAll('[data-testid=group-member-list] li')].map(e => e.dataset.userId).includes(\(BrowserPage.literal(bobHandle)))"
        )
        // The phone-sized layout: one pane at a time; open a chat, go back. Screenshots of both
        // layouts are kept in the test's directory for a reviewer.
        try await screenshot(alice, "desktop")
        _ = try await alice.command(
            "Emulation.setDeviceMetricsOverride", ["width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true])
        let visible = { (id: String) in "getComputedStyle(document.querySelector('\(id)')).display !== 'none'" }
        try await alice.waitFor(
            "the phone layout shows one pane", "\(visible(".conversation")) !== \(visible(".sidebar"))")
        try await screenshot(alice, "phone-conversation")
        try await alice.click("#back-button")
        try await alice.waitFor(
            "back shows the chat list alone", "\(visible(".sidebar")) && !\(visible(".conversation"))")
        try await screenshot(alice, "phone-list")
        #expect(
            try await alice.int("Math.round(document.querySelector('.chat-item').getBoundingClientRect().height)") >= 44
        )
        try await alice.click("[data-testid=chat-item][data-chat-id='\(directId)']")
        try await alice.waitFor("a chat opens full-screen", "\(visible(".conversation")) && !\(visible(".sidebar"))")
        for page in [alice, bob] { await page.close() }

        // The same chats read straight from the ring with the CLI, by the id the page shows.
        for (chatId, texts) in [(directId, ["across servers", "and back"]), (groupId, ["group across servers"])] {
            let lines = try await history(chatId)
            for text in texts {
                #expect(
                    lines.contains { $0.contains("\"text\":\"\(text)\"") },
                    "confab chat history \(chatId) does not show \"\(text)\": \(lines)")
            }
        }
    }

    /// Saves a PNG of the page and prints where.
    private func screenshot(_ page: BrowserPage, _ name: String) async throws {
        // A background tab never renders, so its screenshot never comes: bring it to the front.
        _ = try await page.command("Page.bringToFront")
        let data = try await page.command("Page.captureScreenshot", ["format": "png"])
        let base64 = try BrowserPage.string(data, "data")
        // Outside the test's own directory, which is removed when the test ends: the latest run's
        // pictures stay for a reviewer.
        let dir = NSTemporaryDirectory() + "confab-browser-screenshots"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = "\(dir)/\(name).png"
        _ = FileManager.default.createFile(atPath: path, contents: Data(base64Encoded: base64))
        print("browser test screenshot (\(name)): \(path)")
    }

    /// `confab chat history CHAT_ID --json` against the test's ring: one JSON object per message.
    private func history(_ chatId: String) async throws -> [String] {
        guard let binary = BrowserTestBackend.confabBinary() else {
            throw BrowserTestError("confab executable not found")
        }
        let node = "127.0.0.1:\(backend.nodePorts[0])"
        let run = try await TestCommand.run(
            binary, ["chat", "history", chatId, "--node", node, "--consistency", "quorum", "--json"])
        guard run.status == 0 else {
            throw BrowserTestError("confab history \(chatId) exited with \(run.status): \(run.err)")
        }
        return run.out.split(separator: "\n").map(String.init)
    }

    private func signUp(_ page: BrowserPage, _ handle: String) async throws {
        try await page.fill("#signup-handle", handle)
        try await page.fill("#signup-password", TwoUserScenario.password)
        try await page.click("#signup-button")
        try await page.waitFor(
            "\(handle) is signed in",
            "!document.getElementById('app-view').hidden && document.getElementById('me').textContent === \(BrowserPage.literal(handle))"
        )
    }
}

/// The steps, written as a user would do them, with the page's DOM as the only oracle.
struct TwoUserScenario {
    let url: String
    let devtools: DevToolsConnection

    static let password = "correct horse battery"
    /// Markup and script that must reach the other user as plain text.
    static let hostile = #"Hi bob <b>x</b><script>window.pwned = 1</script><img src=x onerror="window.pwned = 2"> & ☃"#

    /// A WebSocket that fails to open, as a network that refuses upgrades would make it.
    static let webSocketBlocker = """
        window.__webSocketAttempts = 0;
        window.WebSocket = class BlockedWebSocket extends EventTarget {
          constructor(url) {
            super(); this.url = url; this.readyState = 0; window.__webSocketAttempts += 1;
            setTimeout(() => {
              this.readyState = 3;
              if (this.onerror) this.onerror(new Event('error'));
              if (this.onclose) this.onclose(new CloseEvent('close', {code: 1006, wasClean: false}));
            }, 20);
          }
          send() { throw new Error('this WebSocket never opened'); }
          close() {}
        };
        Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
        """

    func run() async throws {
        let alice = try await BrowserPage.open(url, name: "alice", on: devtools)
        let bob = try await BrowserPage.open(url, name: "bob", on: devtools)
        try await signUp(alice, "alice")
        try await signUp(bob, "bob")
        // Carol exists for the group; she signs in later, over long polling.
        _ = try await alice.evaluate(
            """
            fetch('/api/register', {method: 'POST', headers: {'Content-Type': 'application/json'},
              body: JSON.stringify({handle: 'carol', password: \(BrowserPage.literal(Self.password))})}).then(r => r.status)
            """)
        try await alice.waitFor(
            "alice is connected over the WebSocket",
            "document.getElementById('connection-status').dataset.state === 'websocket'")
        try await bob.waitFor(
            "bob is connected over the WebSocket",
            "document.getElementById('connection-status').dataset.state === 'websocket'")
        _ = try await bob.evaluate("window.__noReload = true")
        // No chat open: an empty state, not a disabled composer.
        #expect(
            try await bob.evaluate(
                "getComputedStyle(document.getElementById('empty-state')).display !== 'none' && getComputedStyle(document.getElementById('composer-form')).display === 'none'"
            ) as? Bool == true)
        // Desktop notifications, recorded instead of shown (headless Chromium has no desktop).
        _ = try await bob.evaluate(
            """
            window.__notes = [];
            window.Notification = class { constructor(title, options) { window.__notes.push({title, body: options.body}); }
              static get permission() { return 'granted'; } static requestPermission() { return Promise.resolve('granted'); } };
            true
            """)

        // Alice starts a 1:1 chat with bob and sends markup.
        try await alice.fill("#new-direct-handle", "bob")
        try await alice.click("#new-direct-button")
        try await alice.waitFor(
            "the direct chat is open", "document.getElementById('conversation').dataset.chatId !== ''")
        let directId = try await alice.string("document.getElementById('conversation').dataset.chatId")
        try await alice.fill("#composer", Self.hostile)
        try await alice.click("#send-button")
        try await alice.waitFor(
            "alice's message is acknowledged",
            "document.querySelector('[data-testid=message][data-state=acked][data-sender=alice]') !== null")
        let messageId = try await alice.string(
            "document.querySelector('[data-testid=message][data-sender=alice]').dataset.messageId")
        #expect(!messageId.isEmpty)

        // Bob sees the chat appear with one unread message, opens it, and reads the markup as text.
        try await bob.waitFor(
            "bob's chat list shows the direct chat with 1 unread",
            "[...document.querySelectorAll('[data-testid=chat-item]')].some(e => e.dataset.chatId === \(BrowserPage.literal(directId)) && e.querySelector('[data-testid=unread-count]').textContent === '1')"
        )
        try await bob.waitFor(
            "bob is notified of alice's message and the tab title shows 1 unread",
            "window.__notes.length === 1 && window.__notes[0].title === 'alice' && document.title.startsWith('(1) ')")
        try await bob.click("[data-testid=chat-item][data-chat-id='\(directId)']")
        try await bob.waitFor(
            "bob sees alice's message",
            "document.querySelector('[data-testid=message][data-message-id=\(BrowserPage.literal(messageId))]') !== null"
        )
        let shown = try await bob.string(
            "document.querySelector('[data-message-id=\(BrowserPage.literal(messageId))] [data-testid=message-text]').textContent"
        )
        #expect(shown == Self.hostile)
        #expect(
            try await bob.int(
                "document.querySelectorAll('#message-list b, #message-list script, #message-list img').length") == 0)
        #expect(
            try await bob.evaluate("window.pwned === undefined") as? Bool == true,
            "the message's script ran in bob's page")
        #expect(
            try await alice.int(
                "document.querySelectorAll('#message-list b, #message-list script, #message-list img').length") == 0)
        try await bob.waitFor(
            "bob's unread count is cleared",
            "document.querySelector('[data-testid=chat-item][data-chat-id=\"\(directId)\"] [data-testid=unread-count]').textContent === ''"
        )

        // Presence and typing reach alice.
        try await alice.waitFor("alice sees bob online", "document.getElementById('presence').textContent === 'online'")
        try await bob.fill("#composer", "typing…")
        try await alice.waitFor(
            "alice sees bob typing", "document.getElementById('typing-indicator').textContent.includes('bob is typing')"
        )

        // Bob replies; alice gets it live, after her own message, exactly once.
        try await bob.fill("#composer", "hello alice")
        try await bob.click("#send-button")
        try await alice.waitFor(
            "alice sees bob's reply",
            "[...document.querySelectorAll('[data-testid=message][data-sender=bob] [data-testid=message-text]')].some(e => e.textContent === 'hello alice')"
        )
        let order =
            try await alice.evaluate(
                "[...document.querySelectorAll('#message-list [data-testid=message]')].map(e => e.dataset.sender)")
            as? [String]
        #expect(order == ["alice", "bob"])
        try await alice.waitFor(
            "bob's read receipt reaches alice",
            "document.querySelector('[data-testid=message][data-sender=alice] [data-testid=message-meta]').textContent.includes('Seen')"
        )

        // A live event lost on the way (injected: bob's page drops one message frame) shows as a gap
        // in the next message's prev, and bob's client fetches it: both messages, once, in order.
        _ = try await bob.evaluate(
            """
            (() => { const ws = window.confab.transport.ws; const deliver = ws.onmessage; window.__dropped = 0;
              ws.onmessage = (e) => {
                try { const f = JSON.parse(e.data);
                  if (f.type === 'message' && f.message && f.message.text === 'lost on the way' && window.__dropped === 0) { window.__dropped = 1; return; }
                } catch (_) {}
                deliver(e); };
              return true; })()
            """)
        for text in ["lost on the way", "after the gap"] {
            try await alice.fill("#composer", text)
            try await alice.click("#send-button")
            try await alice.waitFor("alice's \"\(text)\" is acknowledged", "window.confab.state.pending.size === 0")
        }
        try await bob.waitFor(
            "bob catches up the message his page never got live",
            """
            (() => { const t = [...document.querySelectorAll('#message-list [data-testid=message-text]')].map(e => e.textContent);
              return window.__dropped === 1 && t.filter(x => x === 'lost on the way').length === 1 &&
                t.filter(x => x === 'after the gap').length === 1 && t.indexOf('lost on the way') < t.indexOf('after the gap'); })()
            """)

        // Alice's WebSocket drops; what she sends meanwhile arrives once, and she reconnects.
        _ = try await alice.evaluate("window.confab.transport.ws.close(); true")
        try await alice.fill("#composer", "sent while reconnecting")
        try await alice.click("#send-button")
        try await alice.waitFor(
            "alice is live again",
            "document.getElementById('connection-status').dataset.state === 'websocket' && window.confab.state.pending.size === 0"
        )
        try await bob.waitFor(
            "bob gets the message alice sent while reconnecting",
            "[...document.querySelectorAll('[data-testid=message-text]')].filter(e => e.textContent === 'sent while reconnecting').length === 1"
        )

        // A message over the limit is refused in the page, and its text stays in the composer.
        _ = try await alice.evaluate(
            "document.getElementById('composer').value = 'x'.repeat(100001); document.getElementById('composer').dispatchEvent(new Event('input')); true"
        )
        try await alice.click("#send-button")
        #expect(
            try await alice.string("document.getElementById('composer-error').textContent").contains(
                "the limit is 100,000"))
        #expect(try await alice.int("document.getElementById('composer').value.length") == 100_001)
        #expect(try await alice.int("window.confab.state.pending.size") == 0)
        _ = try await alice.evaluate(
            "document.getElementById('composer').value = ''; document.getElementById('composer').dispatchEvent(new Event('input')); true"
        )

        // A send the server refuses is marked in its bubble with Retry; Retry sends it once. The
        // refusal is injected: sends go over HTTP (the WebSocket is marked unusable) and the POST
        // answers 403.
        _ = try await alice.evaluate(
            """
            (() => { window.confab.transport.kind = 'none';
              const real = window.fetch; window.__realFetch = real;
              window.fetch = (url, init) => (init && init.method === 'POST' && String(url).endsWith('/messages'))
                ? Promise.resolve(new Response(JSON.stringify({error: {code: 'not_a_member', message: 'refused for the test'}}),
                    {status: 403, headers: {'Content-Type': 'application/json'}}))
                : real(url, init);
              return true; })()
            """)
        try await alice.fill("#composer", "refused once")
        try await alice.click("#send-button")
        try await alice.waitFor(
            "the refused message shows Not sent and Retry",
            "!!document.querySelector('[data-testid=message][data-state=failed] [data-testid=retry]') && document.querySelector('[data-testid=message][data-state=failed] [data-testid=message-text]').textContent === 'refused once'"
        )
        _ = try await alice.evaluate(
            "window.fetch = window.__realFetch; window.confab.transport.kind = 'websocket'; true")
        try await alice.click("[data-testid=message][data-state=failed] [data-testid=retry]")
        try await bob.waitFor(
            "bob gets the retried message once",
            "[...document.querySelectorAll('[data-testid=message-text]')].filter(e => e.textContent === 'refused once').length === 1"
        )
        try await alice.waitFor(
            "alice's retried message is acknowledged",
            "window.confab.state.pending.size === 0 && !document.querySelector('[data-testid=message][data-state=failed]')"
        )

        // Carol signs in in a third tab whose WebSockets never open (as behind a proxy that drops
        // upgrades): the client falls back to long polling by itself.
        let carol = try await BrowserPage.open(url, name: "carol", on: devtools, beforeLoad: Self.webSocketBlocker)
        try await carol.fill("#login-handle", "carol")
        try await carol.fill("#login-password", Self.password)
        try await carol.click("#login-button")
        try await carol.waitFor(
            "carol falls back to long polling",
            "document.getElementById('connection-status').dataset.state === 'polling'")
        #expect(try await carol.int("window.__webSocketAttempts") >= 2)

        // A group: alice creates it, writes, and both others get it live.
        try await alice.fill("#new-group-title", "Team <i>one</i>")
        try await alice.fill("#new-group-members", "bob, carol")
        try await alice.click("#new-group-button")
        try await alice.waitFor(
            "the group is open",
            "document.getElementById('conversation').dataset.chatId !== \(BrowserPage.literal(directId)) && document.getElementById('conversation').dataset.chatId !== ''"
        )
        let groupId = try await alice.string("document.getElementById('conversation').dataset.chatId")
        try await alice.fill("#composer", "hello team")
        try await alice.click("#send-button")
        for page in [bob, carol] {
            try await page.waitFor(
                "\(page.name) sees the group first in the chat list",
                "document.querySelector('[data-testid=chat-item]')?.dataset.chatId === \(BrowserPage.literal(groupId))")
            try await page.click("[data-testid=chat-item][data-chat-id='\(groupId)']")
            try await page.waitFor(
                "\(page.name) sees the group message",
                "[...document.querySelectorAll('[data-testid=message-text]')].some(e => e.textContent === 'hello team')"
            )
            #expect(
                try await page.string("document.getElementById('conversation-title').textContent") == "Team <i>one</i>")
            #expect(try await page.int("document.querySelectorAll('#message-list i').length") == 0)
        }
        // Carol answers over HTTP (no WebSocket); alice and bob get it live.
        try await carol.fill("#composer", "carol here")
        try await carol.click("#send-button")
        for page in [alice, bob] {
            try await page.waitFor(
                "\(page.name) sees carol's group message",
                "[...document.querySelectorAll('[data-testid=message][data-sender=carol] [data-testid=message-text]')].some(e => e.textContent === 'carol here')"
            )
        }
        // No message shows twice anywhere, and bob's page was never reloaded.
        for page in [alice, bob, carol] {
            let duplicates = try await page.int(
                """
                (() => { const ids = [...document.querySelectorAll('[data-testid=message]')].map(e => e.dataset.messageId);
                  return ids.length - new Set(ids).size; })()
                """)
            #expect(duplicates == 0, "\(page.name) shows a message twice")
        }
        #expect(try await bob.evaluate("window.__noReload === true") as? Bool == true)

        // History: alice posts 60 more messages over HTTP; bob reloads his tab (still signed in:
        // the token is in this tab's sessionStorage), opens the chat and scrolls back to its start.
        let posted = try await alice.int(
            """
            (async () => {
              const token = window.confab.state.session.token;
              let ok = 0;
              for (let i = 0; i < 60; i++) {
                const body = JSON.stringify({clientId: 'history-' + i, text: 'history ' + i});
                for (let attempt = 0; attempt < 20; attempt++) {
                  const r = await fetch('/api/chats/\(directId)/messages', {method: 'POST', body,
                    headers: {'Content-Type': 'application/json', Authorization: 'Bearer ' + token}});
                  if (r.ok) { ok++; break; }
                  if (r.status !== 429) throw new Error('send failed: ' + r.status + ' ' + await r.text());
                  await new Promise(resolve => setTimeout(resolve, 200));
                }
              }
              return ok;
            })()
            """)
        #expect(posted == 60)
        _ = try await bob.command("Page.reload")
        try await bob.waitFor(
            "bob is still signed in after a reload",
            "!!window.confab && !document.getElementById('app-view').hidden && document.getElementById('me').textContent === 'bob'"
        )
        try await bob.waitFor(
            "bob's chat list is back",
            "document.querySelector('[data-testid=chat-item][data-chat-id=\"\(directId)\"]') !== null")
        try await bob.click("[data-testid=chat-item][data-chat-id='\(directId)']")
        try await bob.waitFor(
            "bob sees the newest page of history",
            "document.querySelectorAll('#message-list [data-testid=message]').length >= 50")
        #expect(
            try await bob.int("document.querySelectorAll('#message-list [data-testid=message]').length") < 66,
            "the first page should not hold the whole chat, or scrolling back is not tested")
        // Scroll events fire as a page renders, and only the front tab renders.
        _ = try await bob.command("Page.bringToFront")
        for _ in 0..<5 {
            _ = try await bob.evaluate("document.getElementById('message-list').scrollTop = 0")
            if try await bob.int("document.querySelectorAll('#message-list [data-testid=message]').length") == 66 {
                break
            }
            try await Task.sleep(for: .milliseconds(300))
        }
        try await bob.waitFor(
            "bob scrolled back to the first message",
            "document.querySelectorAll('#message-list [data-testid=message]').length === 66 && document.getElementById('history-status').textContent.includes('Beginning')"
        )
        let inOrder =
            try await bob.evaluate(
                """
                (() => { const ms = [...document.querySelectorAll('#message-list [data-testid=message]')]
                    .map(e => [Number(e.dataset.ts), e.dataset.messageId]);
                  return ms.every((m, i) => i === 0 || ms[i - 1][0] < m[0] || (ms[i - 1][0] === m[0] && ms[i - 1][1] < m[1])); })()
                """) as? Bool
        #expect(inOrder == true, "bob's history is not in (ts, messageId) order")
        // One day, one separator; alice's run of 60 messages shows her name once, not 60 times.
        #expect(try await bob.int("document.querySelectorAll('#message-list .day-separator').length") == 1)
        #expect(try await bob.int("document.querySelectorAll('#message-list .message.continued').length") >= 55)
        #expect(
            try await bob.int(
                "[...document.querySelectorAll('#message-list .sender')].filter(e => getComputedStyle(e).display !== 'none').length"
            ) <= 6)
        #expect(
            try await bob.string("document.querySelector('#message-list [data-testid=message-text]').textContent")
                == Self.hostile)
        #expect(
            try await bob.string(
                "[...document.querySelectorAll('#message-list [data-testid=message-text]')].pop().textContent")
                == "history 59")
        for page in [alice, bob, carol] { await page.close() }
    }

    private func signUp(_ page: BrowserPage, _ handle: String) async throws {
        try await page.fill("#signup-handle", handle)
        try await page.fill("#signup-password", Self.password)
        try await page.click("#signup-button")
        try await page.waitFor(
            "\(handle) is signed in",
            "!document.getElementById('app-view').hidden && document.getElementById('me').textContent === \(BrowserPage.literal(handle))"
        )
    }
}

/// Runs blocking work (process start-up, file polling) on a thread of its own so it never holds
/// one of the cooperative pool's few threads.
func offCooperativeThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}
