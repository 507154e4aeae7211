// Dashify's live dashboard: one WebSocket for chat, notifications and the
// board. The socket is opened with a single-use token fetched just before
// connecting; the token lives in a local variable only (never storage, a
// cookie or the address bar) and is dropped once the socket is opening.
(() => {
  "use strict";

  const root = document.getElementById("dashboard");
  if (!root) return;

  const CLOSE_SESSION_ENDED = 4001;
  const CLOSE_SESSION_ROTATED = 4002;
  const MAX_BACKOFF_MS = 30000;
  const ROTATION_PAUSE_MS = 750;
  const ROTATION_RETRIES = 3;

  const csrfToken = root.querySelector("[name=csrfmiddlewaretoken]").value;
  const statusLine = document.getElementById("ws-status");
  const roomSelect = document.getElementById("chat-room");
  const boardSelect = document.getElementById("board-select");
  const chatList = document.getElementById("chat-messages");
  const boardView = document.getElementById("board");
  const unreadBadge = document.getElementById("unread-count");
  const notificationList = document.getElementById("notification-list");

  let socket = null;
  let attempts = 0;
  let sessionOver = false;
  let currentRoom = null;
  let currentBoard = null;
  let board = null;
  const members = JSON.parse(document.getElementById("tenant-members").textContent);

  function setStatus(text, kind) {
    statusLine.textContent = text;
    statusLine.className = "status " + (kind || "");
  }

  function showSessionEnded() {
    sessionOver = true;
    root.classList.add("ended");
    root.querySelectorAll("input, button, select").forEach((control) => {
      control.disabled = true;
    });
    statusLine.replaceChildren();
    statusLine.className = "status ended";
    statusLine.append("Your session has ended. ");
    const link = document.createElement("a");
    link.href = root.dataset.loginUrl;
    link.textContent = "Sign in again";
    statusLine.append(link);
  }

  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(frame));
    }
  }

  async function fetchToken() {
    const response = await fetch(root.dataset.tokenUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken },
    });
    if (response.status === 401 || response.status === 403) return null;
    if (!response.ok) throw new Error("token endpoint answered " + response.status);
    const body = await response.json();
    return body.token;
  }

  function scheduleReconnect() {
    if (sessionOver) return;
    const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** attempts);
    attempts += 1;
    const jittered = delay / 2 + Math.random() * (delay / 2);
    setStatus("Disconnected; reconnecting…", "");
    setTimeout(connect, jittered);
  }

  async function connect(rotationRetries = 0) {
    if (sessionOver) return;
    let token;
    try {
      token = await fetchToken();
    } catch (error) {
      scheduleReconnect();
      return;
    }
    if (token === null && rotationRetries > 0) {
      setTimeout(() => connect(rotationRetries - 1), ROTATION_PAUSE_MS);
      return;
    }
    if (token === null) {
      showSessionEnded();
      return;
    }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(
      scheme + "//" + location.host + "/ws/?token=" + encodeURIComponent(token),
    );
    token = null;
    socket.addEventListener("message", (event) => handle(JSON.parse(event.data)));
    socket.addEventListener("close", (event) => {
      socket = null;
      if (event.code === CLOSE_SESSION_ENDED) {
        showSessionEnded();
      } else if (event.code === CLOSE_SESSION_ROTATED) {
        // The new session cookie rides on the response of the request
        // that rotated the key, which may still be on its way to this
        // browser; give it a moment before asking for a token.
        attempts = 0;
        setTimeout(() => connect(ROTATION_RETRIES), ROTATION_PAUSE_MS);
      } else {
        scheduleReconnect();
      }
    });
  }

  // --- rendering ------------------------------------------------------------

  function appendMessage(message) {
    if (chatList.querySelector('[data-id="' + message.id + '"]')) return;
    const empty = chatList.querySelector(".empty");
    if (empty) empty.remove();
    const item = document.createElement("li");
    item.dataset.id = message.id;
    const author = document.createElement("span");
    author.className = "author";
    author.textContent = message.author;
    item.append(author, document.createTextNode(" " + message.body));
    chatList.append(item);
    chatList.scrollTop = chatList.scrollHeight;
  }

  function renderBoard() {
    boardView.replaceChildren();
    if (!board) return;
    const columns = [...board.columns].sort((a, b) => a.position - b.position);
    columns.forEach((column, index) => {
      const box = document.createElement("div");
      box.className = "column";
      box.dataset.columnId = column.id;
      const title = document.createElement("h3");
      title.textContent = column.name;
      box.append(title);
      board.cards
        .filter((card) => card.column === column.id)
        .sort((a, b) => a.position - b.position)
        .forEach((card) => box.append(renderCard(card, columns, index)));
      boardView.append(box);
    });
  }

  function renderCard(card, columns, index) {
    const box = document.createElement("div");
    box.className = "kcard";
    box.dataset.cardId = card.id;
    const title = document.createElement("div");
    title.className = "title";
    title.textContent = card.title;
    const actions = document.createElement("div");
    actions.className = "actions";
    const move = (label, cls, target, position, description) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "secondary " + cls;
      button.textContent = label;
      button.title = description;
      button.setAttribute("aria-label", description);
      button.addEventListener("click", () =>
        send({ type: "card.move", card: card.id, column: target, position }),
      );
      actions.append(button);
    };
    if (index > 0) {
      move("←", "move-left", columns[index - 1].id, 0, "Move to " + columns[index - 1].name);
    }
    if (card.position > 0) {
      move("↑", "move-up", card.column, card.position - 1, "Move up");
    }
    if (index < columns.length - 1) {
      move("→", "move-right", columns[index + 1].id, 0, "Move to " + columns[index + 1].name);
    }
    box.append(title, actions, renderDetails(card));
    return box;
  }

  function toLocalInput(date) {
    const pad = (n) => String(n).padStart(2, "0");
    return (
      date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
      "T" + pad(date.getHours()) + ":" + pad(date.getMinutes())
    );
  }

  // Due date and assignee, edited in place; the worker reminds assignees
  // of cards due within a day.
  function renderDetails(card) {
    const details = document.createElement("details");
    details.className = "card-details";
    const summary = document.createElement("summary");
    const due = card.due_at ? "due " + new Date(card.due_at).toLocaleString() : "no due date";
    summary.textContent = (card.assignee_name || "unassigned") + " · " + due;
    const dueInput = document.createElement("input");
    dueInput.type = "datetime-local";
    dueInput.className = "due-input";
    if (card.due_at) dueInput.value = toLocalInput(new Date(card.due_at));
    const who = document.createElement("select");
    who.className = "assignee-input";
    who.append(new Option("unassigned", ""));
    members.forEach((member) => who.append(new Option(member.username, member.id)));
    who.value = card.assignee ? String(card.assignee) : "";
    const save = document.createElement("button");
    save.type = "button";
    save.className = "secondary save-details";
    save.textContent = "Save";
    save.addEventListener("click", () =>
      send({
        type: "card.update",
        card: card.id,
        // datetime-local is the browser's local time; send it as UTC.
        due_at: dueInput.value ? new Date(dueInput.value).toISOString() : null,
        assignee: who.value ? Number(who.value) : null,
      }),
    );
    details.append(summary, dueInput, who, save);
    return details;
  }

  function upsertCard(card, order) {
    if (!board || card.board !== board.id) return;
    board.cards = board.cards.filter((c) => c.id !== card.id);
    board.cards.push(card);
    if (order) {
      order.forEach((id, position) => {
        const sibling = board.cards.find((c) => c.id === id);
        if (sibling) sibling.position = position;
      });
    }
    renderBoard();
  }

  function setUnread(count) {
    unreadBadge.textContent = String(count);
    unreadBadge.hidden = count === 0;
  }

  function addNotification(notification) {
    const empty = notificationList.querySelector(".empty");
    if (empty) empty.remove();
    const item = document.createElement("li");
    item.dataset.id = notification.id;
    item.className = "unread-item";
    let label;
    if (notification.link) {
      label = document.createElement("a");
      label.href = notification.link;
    } else {
      label = document.createElement("span");
    }
    label.textContent = notification.text;
    const button = document.createElement("button");
    button.className = "secondary mark-read";
    button.dataset.id = notification.id;
    button.textContent = "Mark read";
    item.append(label, document.createTextNode(" "), button);
    notificationList.prepend(item);
  }

  function markReadInList(id) {
    const item = notificationList.querySelector('li[data-id="' + id + '"]');
    if (!item) return;
    item.classList.remove("unread-item");
    const button = item.querySelector(".mark-read");
    if (button) button.remove();
  }

  // --- protocol ---------------------------------------------------------------

  const handlers = {
    hello(frame) {
      attempts = 0;
      setStatus("Live", "live");
      setUnread(frame.unread);
      if (roomSelect.value) joinRoom(Number(roomSelect.value));
      if (boardSelect.value) subscribeBoard(Number(boardSelect.value));
    },
    "chat.history"(frame) {
      if (frame.room !== currentRoom) return;
      chatList.replaceChildren();
      if (frame.messages.length === 0) {
        const empty = document.createElement("li");
        empty.className = "empty";
        empty.textContent = "No messages yet.";
        chatList.append(empty);
      }
      frame.messages.forEach(appendMessage);
    },
    "chat.message"(frame) {
      if (frame.message.room === currentRoom) appendMessage(frame.message);
    },
    "board.snapshot"(frame) {
      board = frame.board;
      renderBoard();
    },
    "card.created"(frame) {
      upsertCard(frame.card);
    },
    "card.updated"(frame) {
      upsertCard(frame.card);
    },
    "card.moved"(frame) {
      upsertCard(frame.card, frame.order);
    },
    "notification.created"(frame) {
      addNotification(frame.notification);
      setUnread(frame.unread);
    },
    "notification.read"(frame) {
      markReadInList(frame.id);
      setUnread(frame.unread);
    },
    "session.ended"() {},
    pong() {},
    error(frame) {
      setStatus("Live (last request refused: " + frame.code + ")", "live");
    },
  };

  function handle(frame) {
    const handler = handlers[frame.type];
    if (handler) handler(frame);
  }

  function joinRoom(roomId) {
    if (currentRoom !== null && currentRoom !== roomId) {
      send({ type: "chat.leave", room: currentRoom });
    }
    currentRoom = roomId;
    send({ type: "chat.join", room: roomId });
  }

  function subscribeBoard(boardId) {
    if (currentBoard !== null && currentBoard !== boardId) {
      send({ type: "board.unsubscribe", board: currentBoard });
    }
    currentBoard = boardId;
    send({ type: "board.subscribe", board: boardId });
  }

  // --- user input ---------------------------------------------------------------

  roomSelect.addEventListener("change", () => joinRoom(Number(roomSelect.value)));
  boardSelect.addEventListener("change", () => subscribeBoard(Number(boardSelect.value)));

  document.getElementById("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("chat-input");
    const body = input.value.trim();
    if (!body || currentRoom === null) return;
    send({ type: "chat.send", room: currentRoom, body });
    input.value = "";
  });

  document.getElementById("card-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("card-title");
    const title = input.value.trim();
    if (!title || !board || board.columns.length === 0) return;
    send({ type: "card.create", board: board.id, column: board.columns[0].id, title });
    input.value = "";
  });

  document.getElementById("export-board").addEventListener("click", async () => {
    const exportStatus = document.getElementById("export-status");
    if (!board) return;
    const url = root.dataset.exportUrl.replace("/0/", "/" + board.id + "/");
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken },
    });
    exportStatus.textContent = response.ok
      ? "Export queued; you will be notified when it is ready."
      : "Export failed (" + response.status + ").";
  });

  notificationList.addEventListener("click", (event) => {
    const button = event.target.closest(".mark-read");
    if (button) send({ type: "notification.read", id: Number(button.dataset.id) });
  });

  connect();
})();
