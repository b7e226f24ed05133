package slackbot

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/slack-go/slack"
)

// maxBody bounds what we read before the signature is checked.
const maxBody = 1 << 20

// Handler receives Slack interaction payloads and slash commands over HTTP.
// Every request is verified with the signing secret first; an unverified
// request gets 401 and touches nothing else. Point both the app's
// Interactivity Request URL and the slash command's URL at it.
type Handler struct {
	secret string
	x      *Interactions
	log    *slog.Logger
}

// NewHandler builds the HTTP endpoint around the shared interaction core.
func NewHandler(signingSecret string, x *Interactions, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	return &Handler{secret: signingSecret, x: x, log: log}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
		return
	}
	if err := h.verify(r.Header, body); err != nil {
		h.log.WarnContext(r.Context(), "slack: rejected unverified request", "remote", r.RemoteAddr, "err", err)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, "bad form body", http.StatusBadRequest)
		return
	}
	switch {
	case form.Get("ssl_check") == "1":
		w.WriteHeader(http.StatusOK) // Slack probing the certificate of a slash command URL
	case form.Get("payload") != "":
		var ic slack.InteractionCallback
		if err := json.Unmarshal([]byte(form.Get("payload")), &ic); err != nil {
			http.Error(w, "bad interaction payload", http.StatusBadRequest)
			return
		}
		writeAck(w, h.x.HandleInteraction(ic))
	case form.Get("command") != "":
		r.Body = io.NopCloser(bytes.NewReader(body))
		cmd, err := slack.SlashCommandParse(r)
		if err != nil {
			http.Error(w, "bad slash command", http.StatusBadRequest)
			return
		}
		writeAck(w, h.x.HandleSlash(cmd))
	default:
		http.Error(w, "neither an interaction nor a slash command", http.StatusBadRequest)
	}
}

// verify checks the v0 signature over the raw body and the 5-minute window.
func (h *Handler) verify(header http.Header, body []byte) error {
	sv, err := slack.NewSecretsVerifier(header, h.secret)
	if err != nil {
		return err
	}
	if _, err := sv.Write(body); err != nil {
		return err
	}
	return sv.Ensure()
}

func writeAck(w http.ResponseWriter, ack any) {
	if ack == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ack)
}
